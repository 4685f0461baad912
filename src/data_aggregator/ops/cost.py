"""Monthly cost of the pipeline for a given load: pure arithmetic, no AWS calls.

An operator sizing a deployment needs to see where the money goes and which figures are measured,
which are assumptions and which come from the price list, so every line item carries its source and
the prices live in one dated file (``ops/prices/<region>.json``) that is easy to check and update.
The request counts follow what ``service.py`` and ``clients.py`` do per batch; docs/cost.md gives the
model and its limits. Units: KB = 1,024 bytes and GB = 1,024**3 bytes, as AWS bills them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

KB = 1024
GB = 1024**3
TRANSACT_LIMIT = 100  # items per TransactWriteItems call (clients._TRANSACT_LIMIT)
WRU_PER_TRANSACTIONAL_ITEM = 2  # DynamoDB bills a transactional write as two standard writes
TRANSACTIONAL_WRITES_PER_FILE = 3  # claim (Put), intent (Update), commit (Update) on the happy path
SQS_BATCH_LIMIT = 10  # ReceiveMessage and DeleteMessageBatch handle up to 10 messages a request
SQS_LONG_POLL_SECONDS = 20  # an idle ESM poller's long poll
FIREHOSE_INCREMENT_KB = 5  # Firehose bills each record rounded up to the next 5 KB
FIREHOSE_BUFFER_MB = 128  # the largest S3 buffer size, the fewest delivery PUTs
FIREHOSE_BUFFER_SECONDS = 900  # the longest buffer interval
DEEP_ARCHIVE_INDEX_KB = 32  # per object, billed at Deep Archive rates
DEEP_ARCHIVE_NAME_KB = 8  # per object, billed at S3 Standard rates

#: The design's own estimate for ~864k files/day of ~100 KB (issue 14), in pounds a month.
DESIGN_ESTIMATE_GBP = (342.0, 982.0)
DESIGN_FILES_PER_DAY = 864_000
DESIGN_AVG_KB = 100.0

MEASURED = "measured"
CONFIGURED = "configured"


class CostError(ValueError):
    """Inputs or a price file the model cannot use; the command reports it in one line (exit 2)."""


class CostInputs(BaseModel):
    """The load and the settings; defaults are the deployed configuration and the measured figures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files_per_day: float = Field(default=DESIGN_FILES_PER_DAY, gt=0)
    avg_kb: float = Field(default=DESIGN_AVG_KB, gt=0, le=512 * 1024)
    region: str = Field(default="eu-west-2", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    memory_mb: int = Field(default=1769, ge=128, le=10240)
    batch_size: int = Field(default=1000, ge=1, le=10000)
    window_s: float = Field(default=20.0, ge=0, le=300)
    #: Overrides the estimate min(batch, files/s x window) when a real figure is known.
    files_per_invocation: float | None = Field(default=None, gt=0)
    #: docs/performance.md: BundleWriter, 3.46 CPU s per GB of input, on an x86 development machine.
    cpu_s_per_gb: float = Field(default=3.46, ge=0)
    #: docs/latency-budget.md: ~5 s of claims, fetches, uploads, intents and commits per 1,000 files.
    io_s_per_file: float = Field(default=0.005, ge=0)
    overhead_s_per_invocation: float = Field(default=0.2, ge=0)
    #: docs/performance.md: input bytes / bundle bytes for the reference mix.
    compression_ratio: float = Field(default=2.38, gt=0)
    days_per_month: float = Field(default=30.0, gt=0, le=31)
    landing_retention_days: float = Field(default=7.0, ge=0)
    archive_standard_days: float = Field(default=30.0, ge=0)
    archive_age_months: float = Field(default=12.0, ge=0)
    distribution_noncurrent_days: float = Field(default=21.0, ge=0)
    consumer_poll_s: float = Field(default=10.0, gt=0)
    sqs_pollers: int = Field(default=5, ge=0)
    kms_requests_per_day: float = Field(default=1000.0, ge=0)
    log_kb_per_invocation: float = Field(default=2.0, ge=0)
    custom_metrics: int = Field(default=29, ge=0)
    #: the SQS interface endpoint (deferrals) in each private subnet's zone; X-Ray's is optional (dev: on).
    interface_endpoints: int = Field(default=2, ge=0)
    endpoint_zones: int = Field(default=2, ge=1)
    #: share of messages deferred once for lack of time (0 when the function keeps up; overload costs
    #: one send, one receive and one delete per ten deferred messages).
    deferred_fraction: float = Field(default=0.0, ge=0, le=100)
    usd_per_gbp: float = Field(default=1.27, gt=0)


@dataclass(frozen=True)
class LineItem:
    """One billed quantity: how much, at what unit price, and where each of the two comes from."""

    service: str
    name: str
    quantity: float
    unit: str
    unit_price: float
    monthly_usd: float
    quantity_source: str
    price_source: str

    @property
    def source(self) -> str:
        return f"{self.quantity_source}; {self.price_source}"


@dataclass(frozen=True)
class Comparison:
    """Another figure for the same volume, with what it covers."""

    name: str
    low_usd: float
    high_usd: float
    note: str


@dataclass(frozen=True)
class CostReport:
    """Line items, their total and the comparisons, with the figures derived on the way."""

    inputs: CostInputs
    price_file: str
    as_of: str
    currency: str
    derived: dict[str, float]
    items: list[LineItem]
    comparisons: list[Comparison]

    @property
    def total_usd(self) -> float:
        return sum(item.monthly_usd for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs.model_dump(),
            "price_file": self.price_file,
            "as_of": self.as_of,
            "currency": self.currency,
            "derived": self.derived,
            "items": [{**asdict(item), "source": item.source} for item in self.items],
            "total_usd": self.total_usd,
            "comparisons": [asdict(c) for c in self.comparisons],
        }


@dataclass(frozen=True)
class PriceList:
    """The prices of one region, by key, in USD per unit, with each price's source page."""

    file: str
    as_of: str
    currency: str
    usd: dict[str, float]
    sources: dict[str, str]

    def label(self, key: str) -> str:
        return f"price list {self.file} ({self.as_of}): {self.sources[key]}"


PRICE_KEYS = (
    "lambda_arm_gb_second",
    "lambda_request",
    "sqs_standard_request",
    "dynamodb_on_demand_wru",
    "s3_standard_gb_month",
    "s3_put_list_request",
    "s3_get_request",
    "s3_deep_archive_gb_month",
    "s3_deep_archive_transition_request",
    "kms_request",
    "cloudwatch_logs_ingest_gb",
    "cloudwatch_custom_metric_month",
    "data_transfer_out_gb",
    "firehose_ingest_gb",
    "vpc_interface_endpoint_hour",
    "vpc_interface_endpoint_gb",
)


def load_prices(region: str) -> PriceList:
    """Read ``prices/<region>.json``; a missing region or key is a CostError, not a wrong total."""
    name = f"{region}.json"
    resource = resources.files("data_aggregator.ops").joinpath("prices", name)
    if not resource.is_file():
        raise CostError(f"no price list for region {region!r} (add ops/prices/{name})")
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
        if data["currency"] != "USD":
            raise CostError(f"{name}: currency must be USD, not {data['currency']!r}")
        prices = data["prices"]
        usd = {key: float(prices[key]["usd"]) for key in PRICE_KEYS}
        sources = {key: str(prices[key]["source"]) for key in PRICE_KEYS}
        return PriceList(file=name, as_of=str(data["as_of"]), currency="USD", usd=usd, sources=sources)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CostError):
            raise
        raise CostError(f"{name}: malformed price list ({exc!r})") from None


def make_inputs(**values: object) -> CostInputs:
    """Validate ``values`` (strings from the command line included) into one-line CostErrors."""
    try:
        return CostInputs.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]).replace("_", "-")
        raise CostError(f"--{field}: {first['msg']} (got {first.get('input')!r})") from None


def firehose_billed_kb(record_kb: float) -> float:
    """Firehose bills each record rounded up to the next 5 KB: a 7 KB record bills as 10 KB."""
    return math.ceil(record_kb / FIREHOSE_INCREMENT_KB) * FIREHOSE_INCREMENT_KB


#: service, item, quantity, unit, price key, quantity source
Row = tuple[str, str, float, str, str, str]


def _rows(inputs: CostInputs) -> tuple[list[Row], dict[str, float]]:
    """The billed quantities a month, from the load and what the code does per batch."""
    days = inputs.days_per_month
    month_s = days * 86400
    files = inputs.files_per_day * days
    file_bytes = inputs.avg_kb * KB
    input_gb = files * file_bytes / GB
    fpi = inputs.files_per_invocation or min(
        float(inputs.batch_size), max(1.0, inputs.files_per_day / 86400 * inputs.window_s)
    )
    invocations = files / fpi
    bundles = invocations  # one bundle per batch: the batch size never exceeds MAX_FILES_PER_BUNDLE
    bundle_gb_per_day = inputs.files_per_day * file_bytes / inputs.compression_ratio / GB
    seconds_per_invocation = (
        inputs.overhead_s_per_invocation + fpi * inputs.io_s_per_file + fpi * file_bytes / GB * inputs.cpu_s_per_gb
    )
    days_in_deep_archive = max(0.0, inputs.archive_age_months * days - inputs.archive_standard_days)
    deep_archive_objects = bundles / days * days_in_deep_archive
    ratio_and_configured = MEASURED + " ratio + configured"
    rows: list[Row] = [
        (
            "Lambda",
            "compute",
            invocations * seconds_per_invocation * inputs.memory_mb / 1024,
            "GB-s",
            "lambda_arm_gb_second",
            "measured (x86 dev machine) + configured",
        ),
        ("Lambda", "requests", invocations, "requests", "lambda_request", CONFIGURED),
        ("SQS", "S3 event messages (SendMessage)", files, "requests", "sqs_standard_request", CONFIGURED),
        (
            "SQS",
            "ESM ReceiveMessage (10 a call + idle long polls)",
            files / SQS_BATCH_LIMIT + inputs.sqs_pollers * month_s / SQS_LONG_POLL_SECONDS,
            "requests",
            "sqs_standard_request",
            CONFIGURED,
        ),
        (
            "SQS",
            "ESM DeleteMessageBatch (10 a call)",
            files / SQS_BATCH_LIMIT,
            "requests",
            "sqs_standard_request",
            CONFIGURED,
        ),
        (
            "SQS",
            "deferrals: send, receive and delete again (10 a call)",
            files * inputs.deferred_fraction * 3 / SQS_BATCH_LIMIT,
            "requests",
            "sqs_standard_request",
            CONFIGURED,
        ),
        (
            "VPC",
            "interface endpoints (SQS for deferrals, X-Ray), per zone",
            inputs.interface_endpoints * inputs.endpoint_zones * month_s / 3600,
            "endpoint-hours",
            "vpc_interface_endpoint_hour",
            CONFIGURED,
        ),
        (
            "DynamoDB",
            "claim + intent + commit, 2 WRU per item",
            files * TRANSACTIONAL_WRITES_PER_FILE * WRU_PER_TRANSACTIONAL_ITEM,
            "WRU",
            "dynamodb_on_demand_wru",
            CONFIGURED,
        ),
        ("S3 Landing", "PUT by third parties (owner pays)", files, "requests", "s3_put_list_request", CONFIGURED),
        ("S3 Landing", "GET by the function", files, "requests", "s3_get_request", CONFIGURED),
        (
            "S3 Landing",
            "storage, Standard",
            inputs.files_per_day * file_bytes / GB * inputs.landing_retention_days,
            "GB-month",
            "s3_standard_gb_month",
            CONFIGURED,
        ),
        ("S3 Archive", "PUT (one a bundle)", bundles, "requests", "s3_put_list_request", CONFIGURED),
        (
            "S3 Archive",
            "storage, Standard before the transition",
            bundle_gb_per_day * min(inputs.archive_standard_days, inputs.archive_age_months * days),
            "GB-month",
            "s3_standard_gb_month",
            ratio_and_configured,
        ),
        (
            "S3 Archive",
            "transition to Deep Archive",
            bundles,
            "requests",
            "s3_deep_archive_transition_request",
            CONFIGURED,
        ),
        (
            "S3 Archive",
            "storage, Deep Archive",
            bundle_gb_per_day * days_in_deep_archive,
            "GB-month",
            "s3_deep_archive_gb_month",
            ratio_and_configured,
        ),
        (
            "S3 Archive",
            "Deep Archive index, 32 KB an object",
            deep_archive_objects * DEEP_ARCHIVE_INDEX_KB * KB / GB,
            "GB-month",
            "s3_deep_archive_gb_month",
            CONFIGURED,
        ),
        (
            "S3 Archive",
            "Deep Archive name, 8 KB an object (Standard)",
            deep_archive_objects * DEEP_ARCHIVE_NAME_KB * KB / GB,
            "GB-month",
            "s3_standard_gb_month",
            CONFIGURED,
        ),
        ("S3 Distribution", "PUT (one a bundle)", bundles, "requests", "s3_put_list_request", CONFIGURED),
        (
            "S3 Distribution",
            "consumer LIST (one a poll)",
            month_s / inputs.consumer_poll_s,
            "requests",
            "s3_put_list_request",
            CONFIGURED,
        ),
        (
            "S3 Distribution",
            "consumer GET (one a bundle; DELETE free)",
            bundles,
            "requests",
            "s3_get_request",
            CONFIGURED,
        ),
        (
            "S3 Distribution",
            "storage, noncurrent versions kept",
            bundle_gb_per_day * inputs.distribution_noncurrent_days,
            "GB-month",
            "s3_standard_gb_month",
            ratio_and_configured,
        ),
        ("KMS", "requests (S3 Bucket Keys)", inputs.kms_requests_per_day * days, "requests", "kms_request", CONFIGURED),
        (
            "CloudWatch",
            "log ingestion",
            invocations * inputs.log_kb_per_invocation * KB / GB,
            "GB",
            "cloudwatch_logs_ingest_gb",
            CONFIGURED,
        ),
        (
            "CloudWatch",
            "custom metrics",
            inputs.custom_metrics,
            "metrics",
            "cloudwatch_custom_metric_month",
            CONFIGURED,
        ),
        (
            "Data transfer",
            "out to on-prem (bundles)",
            input_gb / inputs.compression_ratio,
            "GB",
            "data_transfer_out_gb",
            MEASURED + " ratio",
        ),
    ]
    derived = {
        "files_per_month": files,
        "input_gb_per_month": input_gb,
        "bundle_gb_per_month": input_gb / inputs.compression_ratio,
        "files_per_invocation": fpi,
        "invocations_per_month": invocations,
        "seconds_per_invocation": seconds_per_invocation,
        "claim_calls_per_invocation": math.ceil(fpi / TRANSACT_LIMIT),
        "wru_per_file": TRANSACTIONAL_WRITES_PER_FILE * WRU_PER_TRANSACTIONAL_ITEM,
    }
    return rows, derived


def _comparisons(inputs: CostInputs, p: PriceList, items: list[LineItem], input_gb: float) -> list[Comparison]:
    """The design's estimate in USD, and Firehose for the same records."""
    low, high = DESIGN_ESTIMATE_GBP
    same_volume = (inputs.files_per_day, inputs.avg_kb) == (DESIGN_FILES_PER_DAY, DESIGN_AVG_KB)
    design = Comparison(
        "design estimate",
        low * inputs.usd_per_gbp,
        high * inputs.usd_per_gbp,
        f"GBP {low:,.0f}-{high:,.0f}/month at {DESIGN_FILES_PER_DAY:,} files/day x {DESIGN_AVG_KB:.0f} KB, "
        f"at {inputs.usd_per_gbp} USD/GBP (configured)" + ("" if same_volume else "; not the volume modelled here"),
    )
    files = inputs.files_per_day * inputs.days_per_month
    firehose_gb = files * firehose_billed_kb(inputs.avg_kb) * KB / GB
    deliveries = max(input_gb * 1024 / FIREHOSE_BUFFER_MB, inputs.days_per_month * 86400 / FIREHOSE_BUFFER_SECONDS)
    firehose = firehose_gb * p.usd["firehose_ingest_gb"] + deliveries * p.usd["s3_put_list_request"]
    replaced = sum(i.monthly_usd for i in items if i.service in ("Lambda", "SQS", "DynamoDB", "S3 Landing"))
    firehose_cmp = Comparison(
        "Amazon Data Firehose",
        firehose,
        firehose,
        f"{firehose_gb:,.1f} GB billed (each record rounded up to 5 KB), no format conversion, delivery to S3 "
        f"({deliveries:,.0f} PUTs at 128 MB buffers); it replaces the Landing, SQS, Lambda and DynamoDB lines "
        f"here (USD {replaced:,.2f}); Archive, Distribution and transfer out stay",
    )
    return [design, firehose_cmp]


def estimate(inputs: CostInputs, prices: PriceList | None = None) -> CostReport:
    """The monthly line items for ``inputs``, their total and the two comparisons."""
    p = prices or load_prices(inputs.region)
    rows, derived = _rows(inputs)
    items = [
        LineItem(service, name, qty, unit, p.usd[key], qty * p.usd[key], source, p.label(key))
        for service, name, qty, unit, key, source in rows
    ]
    comparisons = _comparisons(inputs, p, items, derived["input_gb_per_month"])
    return CostReport(inputs, p.file, p.as_of, p.currency, derived, items, comparisons)


def render(report: CostReport) -> str:
    """A plain-text table: one row a line item, then the total and the comparisons."""
    rows = [("service", "item", "quantity/month", "unit", "unit price", "USD/month", "source")]
    for item in report.items:
        rows.append(
            (
                item.service,
                item.name,
                f"{item.quantity:,.2f}" if item.quantity < 1000 else f"{item.quantity:,.0f}",
                item.unit,
                f"{item.unit_price:.10g}",
                f"{item.monthly_usd:,.2f}",
                f"{item.quantity_source}; price list {report.price_file}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 4, 5}
    lines = [
        "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    lines.append(f"{'total':<{widths[0] + widths[1] + 2}}  USD {report.total_usd:,.2f}/month")
    d = report.derived
    i = report.inputs
    lines += [
        "",
        f"prices: {report.price_file}, list prices as of {report.as_of} in {report.currency}, free tiers ignored; "
        "check them against the sources in --json",
        f"load: {i.files_per_day:,.0f} files/day x {i.avg_kb:g} KB; {d['files_per_invocation']:,.0f} files an "
        f"invocation, {d['seconds_per_invocation']:.2f} s each at {i.memory_mb} MB",
        f"measured: {i.cpu_s_per_gb} CPU s/GB and compression ratio {i.compression_ratio} (docs/performance.md), "
        "on an x86 development machine, not on Graviton",
    ]
    for c in report.comparisons:
        span = f"USD {c.low_usd:,.2f}" + ("" if c.high_usd == c.low_usd else f"-{c.high_usd:,.2f}")
        lines.append(f"compare: {c.name}: {span}/month ({c.note})")
    return "\n".join(lines)
