alarm_email = null
