import pytest
from flask import Flask

from services import passwords


def _hashing_app(testing: bool) -> Flask:
    """A bare app whose passwords module was set up as create_app sets it up."""
    app = Flask(__name__)
    app.config["TESTING"] = testing
    passwords.init_app(app)
    return app


def test_hash_is_argon2id_at_owasp_parameters_outside_tests():
    with _hashing_app(testing=False).app_context():
        stored = passwords.hash_password("a long enough passphrase")
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert passwords.verify_password(stored, "a long enough passphrase")
        assert not passwords.verify_password(stored, "a long enough passphrasE")
        assert not passwords.needs_rehash(stored)


def test_tests_hash_cheaply_with_the_same_algorithm():
    with _hashing_app(testing=True).app_context():
        stored = passwords.hash_password("a long enough passphrase")
        assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
        assert passwords.verify_password(stored, "a long enough passphrase")
        assert not passwords.verify_password(stored, "a long enough passphrasE")


def test_verify_without_hash_is_false_and_garbage_hash_is_false():
    with _hashing_app(testing=True).app_context():
        assert passwords.verify_password(None, "anything at all") is False
        assert passwords.verify_password("not-a-hash", "anything at all") is False


@pytest.mark.parametrize(
    "candidate, username, refused",
    [
        ("short12", "", True),  # 7 characters
        ("eightchr", "", False),
        ("x" * 128, "", False),
        ("x" * 129, "", True),
        ("password", "", True),  # among the most common
        ("PassWord123", "", True),  # common, whatever the case
        ("woaini1314", "", True),
        ("wangfang2024", "wangfang2024", True),  # same as the username
        ("all lowercase words no digits", "", False),  # no composition rules
        ("密码是一句很长的中文", "", False),
    ],
)
def test_password_rules(candidate, username, refused):
    assert (passwords.password_problem(candidate, username) is not None) is refused
