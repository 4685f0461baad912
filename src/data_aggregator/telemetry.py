"""The name of every metric the two functions emit, and the dimensions each carries.

One place for them, because three readers must agree: the handler and the monitor that emit them, and
the alarms and dashboard in ``infra/components/04-observability`` whose plan tests read this module.
An alarm on a metric nobody emits never fires, and nothing else would notice.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Powertools adds the ``service`` dimension to every metric of a ``Metrics`` with a service name.
SERVICE_DIMENSION = "service"

#: Handler counters: metric name -> ``service.BatchReport`` attribute, emitted once per invocation.
HANDLER_COUNTERS: Mapping[str, str] = {
    "FilesBundled": "files_bundled",
    "DuplicatesSkipped": "duplicates",
    "ObjectsMissing": "missing",
    "PoisonMessages": "poison_messages",
    "TestEvents": "test_events",
    "RecordsIgnored": "ignored_records",
    "ObjectsTooLarge": "objects_too_large",
    "ClaimsHeld": "claims_held",
    "FetchFailures": "fetch_failures",
    "BundlesAbandoned": "bundles_abandoned",
    "UploadFailures": "upload_failures",
    "CommitFailures": "commit_failures",
    "DeadlineLeftovers": "deadline_leftovers",
    "RecordsRetried": "records_retried",
    "FencesLost": "fences_lost",
    "SizeMismatches": "size_mismatches",
    "ClaimStorePermanentErrors": "claim_store_permanent_errors",
    "BundlesRecovered": "bundles_recovered",
    # Sent to the queue again for lack of time (not failures); sustained, they mean the function cannot
    # keep up. DeferralsRefused: messages that could not be deferred (bounds reached) and failed instead.
    "MessagesDeferred": "messages_deferred",
    "DeferralsRefused": "deferrals_refused",
}
BUNDLES_WRITTEN = "BundlesWritten"
MESSAGES_FAILED = "MessagesFailed"
INPUT_BYTES = "InputBytes"
BUNDLE_BYTES = "BundleBytes"
BUNDLE_BUILD_SECONDS = "BundleBuildSeconds"
#: Seconds from the oldest file's eventTime to its bundle's publication: the latency SLO (SPEC N1).
OLDEST_FILE_AGE_SECONDS = "OldestFileAgeSeconds"

HANDLER_METRICS: frozenset[str] = frozenset(HANDLER_COUNTERS) | {
    BUNDLES_WRITTEN,
    MESSAGES_FAILED,
    INPUT_BYTES,
    BUNDLE_BYTES,
    BUNDLE_BUILD_SECONDS,
    OLDEST_FILE_AGE_SECONDS,
}
HANDLER_DIMENSIONS: tuple[str, ...] = (SERVICE_DIMENSION,)

#: The Distribution backlog monitor's figures, with the bucket as a second dimension.
DISTRIBUTION_BUCKET_DIMENSION = "DistributionBucket"
DISTRIBUTION_OBJECT_COUNT = "DistributionObjectCount"
DISTRIBUTION_OLDEST_AGE = "DistributionOldestObjectAgeSeconds"
DISTRIBUTION_BYTES = "DistributionBytes"
MONITOR_METRICS: frozenset[str] = frozenset({DISTRIBUTION_OBJECT_COUNT, DISTRIBUTION_OLDEST_AGE, DISTRIBUTION_BYTES})
MONITOR_DIMENSIONS: tuple[str, ...] = (SERVICE_DIMENSION, DISTRIBUTION_BUCKET_DIMENSION)
