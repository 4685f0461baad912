"""Checks over the parsed Terraform (python-hcl2) that tie infra/ to the Python code and the docs.

Behaviour (policies, lifecycle, alarms, latency invariants) is asserted on evaluated plans in
``infra/components/*/tests/*.tftest.hcl`` (driven by test_terraform_plans.py). What stays here needs the
Python side: the function's environment names equal Settings' aliases, the tuned values pass Settings'
validation, and every checkov skip carries a reason and is listed in infra/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from data_aggregator.config import Settings

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
COMPONENTS = INFRA / "components"
ENVIRONMENTS = sorted(p.name for p in (INFRA / "environments").iterdir() if p.is_dir())

NETWORK = "01-network"
STATEFUL = "02-stateful-resources"
APPLICATION = "03-application"
OBSERVABILITY = "04-observability"

BUCKET_KEYS = {"landing", "archive", "distribution", "access_logs"}
# Names the function may receive besides Settings' aliases: the log level and Powertools' own.
RUNTIME_VARIABLES = {"LOG_LEVEL", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}

Body = dict[str, Any]


def _clean(value: Any) -> Any:
    """Strip python-hcl2's quoting and bookkeeping so values read like the source."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


@dataclass
class Component:
    """One component's blocks, merged over its .tf files."""

    name: str
    resources: dict[tuple[str, str], Body] = field(default_factory=dict)
    data: dict[tuple[str, str], Body] = field(default_factory=dict)
    variables: dict[str, Body] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Body] = field(default_factory=dict)
    source: str = ""

    def resource(self, kind: str, name: str) -> Body:
        assert (kind, name) in self.resources, f"{self.name}: missing resource {kind}.{name}"
        return self.resources[(kind, name)]

    def doc(self, name: str) -> Body:
        key = ("aws_iam_policy_document", name)
        assert key in self.data, f"{self.name}: missing policy document {name}"
        return self.data[key]

    def of_type(self, kind: str) -> dict[str, Body]:
        return {name: body for (k, name), body in self.resources.items() if k == kind}

    def default(self, variable: str) -> Any:
        assert variable in self.variables, f"{self.name}: no variable {variable}"
        return self.variables[variable].get("default")


@cache
def component(name: str) -> Component:
    result = Component(name)
    for path in sorted((COMPONENTS / name).glob("*.tf")):
        text = path.read_text(encoding="utf-8")
        result.source += text
        parsed = _clean(hcl2.loads(text))
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for rname, body in named.items():
                    result.resources[(kind, rname)] = body
        for block in parsed.get("data", []):
            for kind, named in block.items():
                for dname, body in named.items():
                    result.data[(kind, dname)] = body
        for block in parsed.get("variable", []):
            result.variables.update(block)
        for block in parsed.get("locals", []):
            result.locals.update(block)
        for block in parsed.get("output", []):
            result.outputs.update(block)
    return result


@cache
def tfvars(env: str, name: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for file in ("common.tfvars", f"{name}.tfvars"):
        path = INFRA / "environments" / env / file
        if path.exists():
            values.update(_clean(hcl2.loads(path.read_text(encoding="utf-8"))))
    return values


def effective(env: str, name: str, variable: str) -> Any:
    """The value a variable takes in an environment: its tfvars entry, else its default."""
    values = tfvars(env, name)
    return values[variable] if variable in values else component(name).default(variable)


def var_ref(expression: Any) -> str:
    """The variable an attribute is wired to; fails when it is anything else (a literal, a local...)."""
    match = re.fullmatch(r"\$\{var\.(\w+)\}", str(expression))
    assert match, f"expected a plain var reference, got {expression!r}"
    return match.group(1)


def statements(doc: Body) -> list[Body]:
    return list(doc.get("statement", []))


def is_allow(statement: Body) -> bool:
    return bool(statement.get("effect", "Allow") == "Allow")


def conditions(statement: Body) -> set[tuple[str, str, str]]:
    found = set()
    for cond in statement.get("condition", []):
        for value in cond["values"] if isinstance(cond["values"], list) else [cond["values"]]:
            found.add((cond["test"], cond["variable"], str(value)))
    return found


def all_policy_documents() -> Iterator[tuple[str, str, Body]]:
    for name in (NETWORK, STATEFUL, APPLICATION, OBSERVABILITY):
        for (kind, dname), body in component(name).data.items():
            if kind == "aws_iam_policy_document":
                yield name, dname, body


def settings_aliases() -> dict[str, Any]:
    return {info.alias: info for info in Settings.model_fields.values() if info.alias}


# --- Buckets ------------------------------------------------------------------------------------------


def test_every_bucket_is_encrypted_data_buckets_with_their_own_kms_key() -> None:
    stateful = component(STATEFUL)
    keys = stateful.locals["bucket_kms_keys"]
    assert set(keys) == BUCKET_KEYS
    for bucket in ("landing", "archive", "distribution"):
        assert keys[bucket] == f"${{aws_kms_key.{bucket}.arn}}"
        key = stateful.resource("aws_kms_key", bucket)
        assert key["enable_key_rotation"] is True
    # Server access logging only delivers to SSE-S3 buckets.
    assert keys["access_logs"] in (None, "null", "${null}")
    rule = stateful.resource("aws_s3_bucket_server_side_encryption_configuration", "this")["rule"][0]
    default = rule["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] == '${local.bucket_kms_keys[each.key] == null ? "AES256" : "aws:kms"}'
    assert default["kms_master_key_id"] == "${local.bucket_kms_keys[each.key]}"


def test_no_allow_statement_grants_wildcard_actions() -> None:
    for name, doc_name, doc in all_policy_documents():
        for statement in statements(doc):
            if is_allow(statement):
                wild = [a for a in statement.get("actions", []) if "*" in a]
                assert not wild, f"{name}/{doc_name}: {statement.get('sid')} allows {wild}"
                assert "not_actions" not in statement, f"{name}/{doc_name}: NotAction in an Allow"


def test_allow_statements_on_buckets_name_their_bucket() -> None:
    for name, doc_name, doc in all_policy_documents():
        for statement in statements(doc):
            actions = statement.get("actions", [])
            if is_allow(statement) and any(a.startswith("s3:") for a in actions):
                for resource in statement.get("resources", []):
                    if doc_name == "s3_endpoint":
                        continue  # the endpoint policy is scoped by aws:ResourceAccount instead
                    assert "bucket" in resource or "aws_s3_bucket" in resource, (name, doc_name, resource)


def test_consumer_can_only_list_get_and_delete_in_distribution() -> None:
    stateful = component(STATEFUL)
    granted: set[str] = set()
    for statement in statements(stateful.doc("consumer")):
        assert is_allow(statement)
        granted.update(statement["actions"])
        for resource in statement["resources"]:
            assert "distribution" in resource, resource
            assert "landing" not in resource
            assert "archive" not in resource
    assert granted == {"s3:ListBucket", "s3:GetObject", "s3:DeleteObject", "kms:Decrypt"}
    # Nothing else is attached to the consumer role.
    attached = [
        body["role"]
        for kind in ("aws_iam_role_policy", "aws_iam_role_policy_attachment")
        for body in stateful.of_type(kind).values()
    ]
    assert [r for r in attached if "consumer" in r] == ["${aws_iam_role.consumer.id}"]
    # And Landing and Archive deny it outright.
    for rules in ("landing_rules", "archive_rules"):
        denied = [
            s
            for s in statements(stateful.doc(rules))
            if s.get("effect") == "Deny" and "${aws_iam_role.consumer.arn}" in s["principals"][0]["identifiers"]
        ]
        assert denied, rules
        assert denied[0]["actions"] == ["s3:*"], rules


def test_archive_versions_cannot_be_deleted() -> None:
    archive = statements(component(STATEFUL).doc("archive_rules"))
    assert any(s.get("effect") == "Deny" and s["actions"] == ["s3:DeleteObjectVersion"] for s in archive)


def test_aggregator_role_is_least_privilege() -> None:
    doc = component(APPLICATION).doc("aggregator")
    by_bucket: dict[str, set[str]] = {"landing": set(), "archive": set(), "distribution": set()}
    actions: set[str] = set()
    for statement in statements(doc):
        assert is_allow(statement)
        actions.update(statement["actions"])
        for resource in statement["resources"]:
            for bucket, granted in by_bucket.items():
                if f'bucket_arns["{bucket}"]' in resource:
                    granted.update(statement["actions"])
    assert by_bucket["landing"] == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "s3:ListBucketVersions",
    }
    # ListBucket (below the bundle prefix): recovery's existence check; a HEAD would get 403 without it.
    assert by_bucket["archive"] == {"s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject", "s3:ListBucket"}
    assert by_bucket["distribution"] == {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucketVersions"}
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    assert {a for a in actions if a.startswith("sqs:")} == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",  # deferral
    }
    assert not [a for a in actions if a.startswith("s3:Delete")]
    # Every KMS grant goes through a named service.
    for statement in statements(doc):
        if any(a.startswith("kms:") for a in statement["actions"]):
            assert any(c[1] == "kms:ViaService" for c in conditions(statement)), statement.get("sid")


def test_monitor_role_only_lists_distribution() -> None:
    doc = component(APPLICATION).doc("monitor")
    assert [(s["actions"], s["resources"]) for s in statements(doc)] == [
        (["s3:ListBucket"], ['${local.stateful.bucket_arns["distribution"]}'])
    ]


# --- Queue, table, topic ----------------------------------------------------------------------------------


def test_queues_are_encrypted_and_the_dlq_is_wired() -> None:
    stateful = component(STATEFUL)
    events = stateful.resource("aws_sqs_queue", "events")
    dlq = stateful.resource("aws_sqs_queue", "dlq")
    for queue in (events, dlq):
        assert queue["kms_master_key_id"] == "${aws_kms_key.pipeline.arn}"
    redrive = re.sub(r"\s+", " ", events["redrive_policy"])
    assert "deadLetterTargetArn = aws_sqs_queue.dlq.arn" in redrive
    assert "maxReceiveCount = var.max_receive_count" in redrive
    assert var_ref(events["message_retention_seconds"]) == "queue_message_retention_seconds"
    assert var_ref(dlq["message_retention_seconds"]) == "dlq_message_retention_seconds"
    for env in ENVIRONMENTS:
        assert effective(env, STATEFUL, "max_receive_count") >= 5, env
        assert effective(env, STATEFUL, "queue_message_retention_seconds") == 4 * 86400, env
        assert effective(env, STATEFUL, "dlq_message_retention_seconds") == 14 * 86400, env


def test_table_matches_the_code_key_ttl_and_is_encrypted() -> None:
    stateful = component(STATEFUL)
    table = stateful.resource("aws_dynamodb_table", "idempotency")
    assert table["hash_key"] == "ObjectID"
    assert table["attribute"] == [{"name": "ObjectID", "type": "S"}]
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert table["server_side_encryption"][0] == {
        "enabled": True,
        "kms_key_arn": "${aws_kms_key.pipeline.arn}",
    }
    ttl_variable = var_ref(table["ttl"][0]["attribute_name"])
    assert table["ttl"][0]["enabled"] is True
    code_default = Settings.model_fields["dynamodb_ttl_attribute"].default
    for env in ENVIRONMENTS:
        assert effective(env, STATEFUL, ttl_variable) == code_default == "ttl", env
    # The same value reaches the function.
    assert stateful.outputs["ttl_attribute"]["value"] == f"${{var.{ttl_variable}}}"
    env_vars = component(APPLICATION).locals["aggregator_environment"]
    assert env_vars["DYNAMODB_TTL_ATTRIBUTE"] == "${local.stateful.ttl_attribute}"


def test_logs_and_alarm_topic_are_encrypted() -> None:
    for name in (NETWORK, APPLICATION):
        groups = component(name).of_type("aws_cloudwatch_log_group")
        assert groups, name
        for group_name, group in groups.items():
            assert group.get("kms_key_id"), (name, group_name)
    topic = component(OBSERVABILITY).resource("aws_sns_topic", "alarms")
    assert topic["kms_master_key_id"] == '${local.stateful.kms_key_arns["pipeline"]}'


# --- Functions ----------------------------------------------------------------------------------------


def test_aggregator_environment_uses_exactly_the_settings_names() -> None:
    application = component(APPLICATION)
    aliases = settings_aliases()
    required = {alias for alias, info in aliases.items() if info.is_required()}
    assert required == {"ARCHIVE_BUCKET_NAME", "DISTRIBUTION_BUCKET_NAME", "IDEMPOTENCY_TABLE_NAME"}
    env_vars = application.locals["aggregator_environment"]
    unknown = set(env_vars) - set(aliases) - RUNTIME_VARIABLES
    assert not unknown, f"not read by data_aggregator.config.Settings: {sorted(unknown)}"
    assert required <= set(env_vars)
    assert env_vars["POWERTOOLS_SERVICE_NAME"] == "data-aggregator"
    assert env_vars["POWERTOOLS_METRICS_NAMESPACE"] == "DataAggregator"
    for alias in ("CLAIM_LEASE_SECONDS", "FETCH_CONCURRENCY", "MAX_FILES_PER_BUNDLE"):
        assert alias in env_vars, alias
    function = application.resource("aws_lambda_function", "aggregator")
    assert function["environment"][0]["variables"] == "${local.aggregator_environment}"


def test_monitor_environment_uses_settings_names() -> None:
    env_vars = component(APPLICATION).locals["monitor_environment"]
    assert set(env_vars) - set(settings_aliases()) - RUNTIME_VARIABLES == set()
    assert "DISTRIBUTION_BUCKET_NAME" in env_vars


def test_tuned_values_are_valid_settings() -> None:
    """The numbers Terraform passes must pass the code's own validation in every environment."""
    application = component(APPLICATION)
    env_vars = application.locals["aggregator_environment"]
    for env in ENVIRONMENTS:
        values = {"ARCHIVE_BUCKET_NAME": "archive-x", "DISTRIBUTION_BUCKET_NAME": "dist-x"}
        values["IDEMPOTENCY_TABLE_NAME"] = "table-x"
        for alias, expression in env_vars.items():
            match = re.fullmatch(r"\$\{(?:tostring\()?var\.(\w+)\)?\}", str(expression))
            if match:
                values[alias] = str(effective(env, APPLICATION, match.group(1)))
        settings = Settings.from_env(values)
        assert settings.claim_lease_seconds == effective(env, APPLICATION, "claim_lease_seconds")


def test_functions_run_python_313_on_arm64_with_tracing() -> None:
    application = component(APPLICATION)
    handlers = {
        "aggregator": "data_aggregator.app.handler",
        "monitor": "data_aggregator.monitor.handler",
    }
    for name, handler in handlers.items():
        function = application.resource("aws_lambda_function", name)
        assert function["handler"] == handler
        assert function["runtime"] == "python3.13"
        assert function["architectures"] == ["arm64"]
        assert function["tracing_config"][0]["mode"] == "Active"
        assert function["vpc_config"][0]["subnet_ids"] == "${local.network.private_subnet_ids}"
        assert function["source_code_hash"] == "${filebase64sha256(local.zip_path)}"


def test_event_source_mapping_reports_partial_failures_through_the_alias() -> None:
    application = component(APPLICATION)
    mapping = application.resource("aws_lambda_event_source_mapping", "events")
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["function_name"] == "${aws_lambda_alias.live.arn}"
    assert mapping["scaling_config"][0]["maximum_concurrency"] == "${var.max_concurrency}"
    assert application.resource("aws_lambda_function", "aggregator")["publish"] is True
    preconditions = [p["condition"] for p in mapping["lifecycle"][0]["precondition"]]
    assert any("6 * var.function_timeout_seconds" in p for p in preconditions)
    assert any("var.claim_lease_seconds > var.function_timeout_seconds" in p for p in preconditions)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_latency_budget_invariants(env: str) -> None:
    application = component(APPLICATION)
    function = application.resource("aws_lambda_function", "aggregator")
    mapping = application.resource("aws_lambda_event_source_mapping", "events")
    queue = component(STATEFUL).resource("aws_sqs_queue", "events")
    timeout = effective(env, APPLICATION, var_ref(function["timeout"]))
    window = effective(env, APPLICATION, var_ref(mapping["maximum_batching_window_in_seconds"]))
    batch = effective(env, APPLICATION, var_ref(mapping["batch_size"]))
    visibility = effective(env, STATEFUL, var_ref(queue["visibility_timeout_seconds"]))
    retention = effective(env, STATEFUL, var_ref(queue["message_retention_seconds"]))
    lease = effective(env, APPLICATION, "claim_lease_seconds")
    ttl_days = effective(env, APPLICATION, "idempotency_ttl_days")
    reserve = effective(env, APPLICATION, "timeout_reserve_seconds")

    assert visibility >= 6 * timeout, "visibility timeout >= 6 x function timeout"
    assert visibility >= 6 * timeout + window, "and covers the batching window too"
    assert timeout < lease, "a live invocation never outlives its lease"
    assert lease + window < visibility, "a dead invocation's lease expires before SQS redelivers"
    assert ttl_days * 86400 > retention, "claims outlive the queue's retention"
    assert batch <= effective(env, APPLICATION, "max_files_per_bundle")
    assert 0 < reserve < timeout
    # SPEC N1: the first attempt of a file (window + one invocation) fits in the 2-minute target.
    assert window + timeout <= 120


# --- Hygiene ------------------------------------------------------------------------------------------


def test_every_checkov_skip_carries_a_reason() -> None:
    skips = []
    for path in sorted(INFRA.rglob("*.tf")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "checkov:skip" in line:
                skips.append((path.relative_to(INFRA), number, line.strip()))
                assert re.fullmatch(r"#checkov:skip=CKV2?_AWS_\d+:.{30,}", line.strip()), (path, number, line)
    assert skips, "the skip inventory in infra/README.md expects skips to exist"


def test_readme_lists_every_checkov_skip() -> None:
    readme = (INFRA / "README.md").read_text(encoding="utf-8")
    for path in sorted(INFRA.rglob("*.tf")):
        for check in re.findall(r"#checkov:skip=(CKV2?_AWS_\d+):", path.read_text(encoding="utf-8")):
            assert check in readme, f"{check} ({path.name}) is not explained in infra/README.md"


def test_environments_give_every_component_its_required_variables() -> None:
    for env in ENVIRONMENTS:
        backend = (INFRA / "environments" / env / "backend.hcl").read_text(encoding="utf-8")
        assert re.search(r"^use_lockfile\s*=\s*true$", backend, re.MULTILINE), env
        for name in (NETWORK, STATEFUL, APPLICATION, OBSERVABILITY):
            given = set(tfvars(env, name)) | {"state_bucket"}
            for variable, body in component(name).variables.items():
                if "default" not in body:
                    assert variable in given, f"{env}/{name}: no value for {variable}"
            unknown = set(tfvars(env, name)) - set(component(name).variables)
            assert not unknown, f"{env}/{name}: tfvars set undeclared variables {unknown}"


def test_redrive_policy_uses_the_exact_sqs_attribute_names() -> None:
    """SQS reads these keys case-sensitively; a typo would silently disable the DLQ."""
    redrive = component(STATEFUL).resource("aws_sqs_queue", "events")["redrive_policy"]
    assert set(re.findall(r"(\w+)\s*=", redrive)) == {"deadLetterTargetArn", "maxReceiveCount"}
