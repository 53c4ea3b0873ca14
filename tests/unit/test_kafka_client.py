"""Every Kafka client connects the way the settings say: plaintext, TLS, SASL, or SASL over TLS."""

import ssl

import faust
import pytest
from pydantic import ValidationError

from worker.kafka_client import client_options, faust_credentials
from worker.settings import Settings


def test_plaintext_by_default():
    settings = Settings(kafka_bootstrap_servers="a:9092,b:9092")
    assert client_options(settings) == {"bootstrap_servers": "a:9092,b:9092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None


def test_sasl_over_tls_carries_mechanism_credentials_and_a_verifying_context():
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="worker",
        kafka_sasl_password="pw",
        kafka_sasl_mechanism="SCRAM-SHA-256",
    )
    options = client_options(settings)
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-256",
        "worker",
        "pw",
    )
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED and options["ssl_context"].check_hostname
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials) and credentials.protocol.value == "SASL_SSL"
    assert credentials.username == "worker" and credentials.mechanism.value == "SCRAM-SHA-256"


def test_tls_without_sasl_and_sasl_without_tls():
    tls = Settings(kafka_security_protocol="SSL")
    assert "ssl_context" in client_options(tls) and "sasl_mechanism" not in client_options(tls)
    assert isinstance(faust_credentials(tls), faust.SSLCredentials)
    plain = client_options(
        Settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
            kafka_sasl_mechanism="PLAIN",
        )
    )
    assert "ssl_context" not in plain and plain["sasl_mechanism"] == "PLAIN"


def test_sasl_without_credentials_is_refused_at_start():
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        Settings(kafka_security_protocol="SASL_SSL")


def test_a_missing_ca_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError):
        client_options(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile="/nonexistent/ca.pem"))
