"""The proxy's configuration comes from its environment: defaults that work, and a bad value stops the
proxy at start with the variable's name (not a call that fails later)."""

import pytest

from worker.gateway.litellm import task_type_of
from worker.gateway.litellm_proxy import ProxyConfig


def test_defaults_and_every_variable_read():
    assert ProxyConfig.from_env({}) == ProxyConfig(kafka_options={"security_protocol": "PLAINTEXT"})
    config = ProxyConfig.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "gw",
            "KAFKA_SASL_PASSWORD": "secret",
            "TOPIC_CALLS_COMPLETED": "c",
            "TOPIC_CALLS_FAILED": "f",
            "TOPIC_CALLS_FEEDBACK": "b",
            "TOPIC_HEURISTICS": "h",
            "GATEWAY_LAYERS": '{"openai/gpt-4o": "balanced"}',
            "GATEWAY_DEFAULT_LAYER": "fast",
            "GATEWAY_TASK_TYPE_KEY": "kind",
            "GATEWAY_DEFAULT_TASK_TYPE": "misc",
            "GATEWAY_BUFFER_SIZE": "500",
            "GATEWAY_ACK_TIMEOUT_S": "2.5",
            "ROUTING_PUBLIC_KEYS": "a, b",
        }
    )
    assert config.kafka_options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "gw",
        "sasl_plain_password": "secret",
    }
    assert (config.topic_completed, config.topic_failed, config.topic_feedback, config.topic_heuristics) == (
        "c",
        "f",
        "b",
        "h",
    )
    assert (config.layers, config.default_layer, config.task_type_key, config.default_task_type) == (
        {"openai/gpt-4o": "balanced"},
        "fast",
        "kind",
        "misc",
    )
    assert (config.buffer_size, config.ack_timeout_s, config.public_keys) == (500, 2.5, ("a", "b"))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GATEWAY_LAYERS": "{not json"}, "GATEWAY_LAYERS is not JSON"),
        ({"GATEWAY_LAYERS": '["fast"]'}, "GATEWAY_LAYERS must be a JSON object"),
        ({"GATEWAY_LAYERS": '{"m": "turbo"}'}, "unknown layers"),
        ({"GATEWAY_DEFAULT_LAYER": "turbo"}, "GATEWAY_DEFAULT_LAYER"),
        ({"GATEWAY_BUFFER_SIZE": "many"}, "GATEWAY_BUFFER_SIZE='many' is not a int"),
        ({"GATEWAY_ACK_TIMEOUT_S": "0"}, "must be above 0"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS'"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_USERNAME"),
    ],
)
def test_a_bad_value_names_its_variable(env, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("(", r"\(")):
        ProxyConfig.from_env(env)


def test_the_task_type_from_the_body_metadata_a_tag_or_the_model_group():
    assert task_type_of({"task_type": "coding", "tags": ["task:x"]}, "task_type", "d") == "coding"
    assert task_type_of({"requester_metadata": {"task_type": "qa"}}, "task_type", "d") == "qa"
    assert task_type_of({"tags": ["team:a", "task:summarization"], "model_group": "chat"}, "task_type", "d") == (
        "summarization"
    )
    assert task_type_of({"tags": "task:not-a-list", "model_group": "chat"}, "task_type", "d") == "chat"
    assert task_type_of({}, "task_type", "d") == "d"
