"""Operator settings from the environment the chart sets."""

from __future__ import annotations

import pytest

from filterjob_operator.control.settings import DEFAULT_IMAGE, DEFAULT_WORKER_RESOURCES, ExternalMetrics, Settings
from filterjob_worker import __version__


def test_defaults_without_any_variable() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.worker_image == DEFAULT_IMAGE == f"ghcr.io/filterjob/filterjob:{__version__}"
    assert settings.broker_secret == "filterjob-broker"
    assert settings.worker_resources == DEFAULT_WORKER_RESOURCES


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "FILTERJOB_WORKER_IMAGE": "registry.example/fj:2",
            "FILTERJOB_BROKER_SECRET": "rabbit",
            "FILTERJOB_STATUS_INTERVAL": "2.5",
            "FILTERJOB_METRICS_PORT": "9191",
            "FILTERJOB_WORKER_GRACE_SECONDS": "20",
            "FILTERJOB_ENQUEUE_BATCH": "100",
            "FILTERJOB_WORKER_RESOURCES": '{"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}',
            "FILTERJOB_LIST_INPUTS": "job",
            "FILTERJOB_IMAGE_PULL_SECRETS": "regcred, mirror,",
            "FILTERJOB_FINALIZER_TIMEOUT": "42.5",
            "FILTERJOB_LISTER_DEADLINE": "120",
            "FILTERJOB_KEDA": "true",
        }
    )
    assert settings == Settings(
        worker_image="registry.example/fj:2",
        broker_secret="rabbit",
        status_interval=2.5,
        metrics_port=9191,
        worker_grace_seconds=20,
        enqueue_batch=100,
        worker_resources={"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
        list_inputs="job",
        image_pull_secrets=("regcred", "mirror"),
        finalizer_timeout=42.5,
        lister_deadline=120,
        keda=True,
    )


@pytest.mark.parametrize(("text", "expected"), [("", False), ("false", False), (" True ", True), ("true", True)])
def test_keda_is_off_unless_true(text: str, expected: bool) -> None:
    assert Settings.from_env({"FILTERJOB_KEDA": text}).keda is expected
    assert Settings.from_env({}).keda is False


@pytest.mark.parametrize("bad", ["yes", "1", "enabled"])
def test_a_keda_flag_that_is_neither_true_nor_false_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match=f"FILTERJOB_KEDA must be true or false, got '{bad}'"):
        Settings.from_env({"FILTERJOB_KEDA": bad})


def test_the_finalizer_timeout_defaults_to_five_minutes_and_must_be_seconds() -> None:
    assert Settings.from_env({}).finalizer_timeout == 300
    assert Settings.from_env({"FILTERJOB_FINALIZER_TIMEOUT": "0"}).finalizer_timeout == 0
    for bad in ("soon", "-1", "nan", "inf"):
        with pytest.raises(ValueError, match="FILTERJOB_FINALIZER_TIMEOUT must be"):
            Settings.from_env({"FILTERJOB_FINALIZER_TIMEOUT": bad})


def test_the_enqueue_batch_defaults_to_500_and_must_be_at_least_one_task() -> None:
    assert Settings.from_env({}).enqueue_batch == 500
    assert Settings.from_env({"FILTERJOB_ENQUEUE_BATCH": " 1 "}).enqueue_batch == 1
    for bad, problem in [
        ("many", "a whole number"),
        ("2.5", "a whole number"),
        ("0", "at least 1"),
        ("-5", "at least 1"),
    ]:
        with pytest.raises(ValueError, match=f"FILTERJOB_ENQUEUE_BATCH must be {problem}"):
            Settings.from_env({"FILTERJOB_ENQUEUE_BATCH": bad})


def test_the_lister_deadline_defaults_to_ten_minutes_and_must_be_whole_seconds() -> None:
    assert Settings.from_env({}).lister_deadline == 600
    assert Settings.from_env({"FILTERJOB_LISTER_DEADLINE": " 1 "}).lister_deadline == 1
    for bad, problem in [
        ("soon", "a whole number"),
        ("2.5", "a whole number"),
        ("0", "at least 1"),
        ("-5", "at least 1"),
    ]:
        with pytest.raises(ValueError, match=f"FILTERJOB_LISTER_DEADLINE must be {problem}"):
            Settings.from_env({"FILTERJOB_LISTER_DEADLINE": bad})


@pytest.mark.parametrize(("text", "expected"), [("auto", "auto"), ("Operator", "operator"), ("", "auto")])
def test_list_inputs_modes(text: str, expected: str) -> None:
    assert Settings.from_env({"FILTERJOB_LIST_INPUTS": text}).list_inputs == expected


def test_an_unknown_list_inputs_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="FILTERJOB_LIST_INPUTS must be one of auto, operator, job"):
        Settings.from_env({"FILTERJOB_LIST_INPUTS": "sometimes"})


@pytest.mark.parametrize(
    ("text", "expected"), [("{}", {}), ("", DEFAULT_WORKER_RESOURCES), ("  ", DEFAULT_WORKER_RESOURCES)]
)
def test_worker_resources_empty_object_means_none_and_blank_means_default(text: str, expected: object) -> None:
    assert Settings.from_env({"FILTERJOB_WORKER_RESOURCES": text}).worker_resources == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{cpu: 1}", "FILTERJOB_WORKER_RESOURCES is not JSON"),
        ('["requests"]', "must be an object with keys"),
        ('{"cpu": "1"}', "must be an object with keys"),
    ],
)
def test_bad_worker_resources_are_refused_naming_the_variable(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"FILTERJOB_WORKER_RESOURCES": text})


def test_external_metrics_are_off_unless_a_port_is_set() -> None:
    assert Settings.from_env({}).external_metrics == ExternalMetrics(port=0)
    assert Settings.from_env({"FILTERJOB_EXTERNAL_METRICS_PORT": "0"}).external_metrics.port == 0


def test_external_metrics_with_a_port_listen_where_told_with_their_certificate() -> None:
    env = {
        "FILTERJOB_EXTERNAL_METRICS_PORT": "6443",
        "FILTERJOB_EXTERNAL_METRICS_CERT": "/tls/tls.crt",
        "FILTERJOB_EXTERNAL_METRICS_KEY": "/tls/tls.key",
    }
    assert Settings.from_env(env).external_metrics == ExternalMetrics(
        port=6443,
        address="0.0.0.0",  # noqa: S104 -- in a pod, it listens on the pod's IP
        cert="/tls/tls.crt",
        key="/tls/tls.key",
    )
    local = Settings.from_env({**env, "FILTERJOB_EXTERNAL_METRICS_ADDRESS": "127.0.0.1"})
    assert local.external_metrics.address == "127.0.0.1"


@pytest.mark.parametrize("missing", ["FILTERJOB_EXTERNAL_METRICS_CERT", "FILTERJOB_EXTERNAL_METRICS_KEY"])
def test_external_metrics_without_a_certificate_or_key_say_which_variables_to_set(missing: str) -> None:
    env = {
        "FILTERJOB_EXTERNAL_METRICS_PORT": "6443",
        "FILTERJOB_EXTERNAL_METRICS_CERT": "/tls/tls.crt",
        "FILTERJOB_EXTERNAL_METRICS_KEY": "/tls/tls.key",
        missing: " ",
    }
    with pytest.raises(ValueError, match="FILTERJOB_EXTERNAL_METRICS_CERT and FILTERJOB_EXTERNAL_METRICS_KEY must"):
        Settings.from_env(env)


@pytest.mark.parametrize("bad", ["https", "-1", "65536", "6443.5"])
def test_an_external_metrics_port_must_be_a_port(bad: str) -> None:
    with pytest.raises(ValueError, match="FILTERJOB_EXTERNAL_METRICS_PORT must be a port number"):
        Settings.from_env({"FILTERJOB_EXTERNAL_METRICS_PORT": bad})
