"""Command-line validation that needs no AWS, and the live status line."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from data_aggregator.cli import build_parser, demo_options, main
from data_aggregator.ops import verify as verify_module
from data_aggregator.sandbox.demo import DemoOptions
from data_aggregator.sandbox.progress import StatusLine


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_rewrites_in_place_on_a_terminal() -> None:
    stream = FakeTerminal()
    line = StatusLine(stream)
    line.update("uploaded 10/900")
    line.update("uploaded 9")
    line.done("done")
    assert stream.getvalue() == "\ruploaded 10/900\ruploaded 9     \rdone      \n"


def test_status_line_prints_periodically_when_piped() -> None:
    stream = io.StringIO()
    now = [0.0]
    line = StatusLine(stream, every=10, clock=lambda: now[0])
    line.update("a")
    now[0] = 5
    line.update("b")
    now[0] = 10
    line.update("c")
    line.done("d")
    assert stream.getvalue() == "a\nc\nd\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--function-timeout", "60"], "function timeout < claim lease < visibility timeout"),
        (["demo", "--batch-size", "500", "--window", "0"], "batching window of at least 1 s"),
        (["verify", "a.tar.gz", "b.tar.gz", "--sha256", "0" * 64], "apply to a single target"),
        (["verify", "s3://bucket-only"], "S3 URI has no object key"),
        (["verify", "x.tar.gz", "--sha256", "nothex"], "64 hex digits"),
        (["verify", "x.tar.gz", "--version-id", "v1"], "--version-id applies to an S3 target only"),
        (["replay", "--prefix", "bundles/"], "give --archive-bucket and --distribution-bucket"),
        (["consume", "--target", "out"], "give --bucket"),
    ],
)
def test_bad_command_lines_exit_2_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ARCHIVE_BUCKET_NAME", "DISTRIBUTION_BUCKET_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_argparse_rejects_malformed_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--rate", "-3"])
    assert exit_info.value.code == 2
    assert "must be positive, got -3" in capsys.readouterr().err


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    for command in ("demo", "replay", "verify", "consume", "dlq"):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0


def test_demo_command_line_defaults_are_the_demo_options_defaults() -> None:
    # The parser repeats the defaults so that --help shows them without importing the sandbox.
    assert demo_options(build_parser().parse_args(["demo"])) == DemoOptions()


def test_demo_command_line_reaches_every_option() -> None:
    args = build_parser().parse_args(
        ["demo", "--rate", "20", "--duration", "30", "--batch-size", "7", "--window", "1.5", "--pollers", "2"]
    )
    options = demo_options(args)
    assert (options.rate, options.count, options.duration) == (20.0, None, 30.0)
    assert (options.batch_size, options.window_seconds, options.pollers) == (7, 1.5, 2)


def test_verify_a_malformed_bundle_exits_1_and_a_directory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("sparse.bin")
        info.size = 4
        info.pax_headers = {"GNU.sparse.map": "abc", "GNU.sparse.major": "0", "GNU.sparse.minor": "1"}
        tar.addfile(info, io.BytesIO(b"data"))
    bundle = tmp_path / "evil.tar.gz"
    bundle.write_bytes(raw.getvalue())
    assert main(["verify", str(bundle)]) == 1
    captured = capsys.readouterr()
    assert "not a readable .tar.gz" in captured.out
    assert "Traceback" not in captured.err

    assert main(["verify", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def _no_aws_environment(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[default\naws_access_key_id = x\n", "AWS configuration: Unable to parse config file"),
        ("", "no AWS credentials found"),
    ],
)
@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "s3://bucket/bundles/x.tar.gz"],
        ["replay", "--archive-bucket", "a-b", "--distribution-bucket", "d-b", "--prefix", "bundles/"],
        ["consume", "--bucket", "d-b", "--once"],
    ],
)
def test_unreadable_or_missing_credentials_exit_2_in_one_line(
    *,
    argv: list[str],
    content: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "aws-config"
    config.write_text(content)
    _no_aws_environment(monkeypatch, config)
    if argv[0] == "consume":
        argv = [*argv, "--target", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


def test_ctrl_c_in_any_subcommand_is_exit_130_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_module, "verify_local_bundle", interrupted)
    assert main(["verify", str(tmp_path / "x.tar.gz")]) == 130
    assert capsys.readouterr().err == "data-aggregator verify: interrupted\n"


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for line in ("0    success", "1    a bad bundle", "2    bad usage or configuration", "3    pending", "130"):
        assert line in out
