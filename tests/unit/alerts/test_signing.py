"""Standard Webhooks signatures: the spec's reference vector, rotation and tampering."""

from alerts.signing import new_secret, sign, signature_header, verify_signature

# From the Standard Webhooks specification's reference implementations.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_reference_vector_from_the_spec():
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert verify_signature(
        SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE, now=SPEC_TIMESTAMP
    )


def test_tampered_body_id_or_stale_timestamp_fail():
    ok = dict(now=SPEC_TIMESTAMP)
    assert not verify_signature(
        SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY + b" ", SPEC_SIGNATURE, **ok
    )
    assert not verify_signature(
        SPEC_SECRET, "msg_other", SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE, **ok
    )
    assert not verify_signature(
        SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE, now=SPEC_TIMESTAMP + 3600
    )
    assert not verify_signature(SPEC_SECRET, SPEC_ID, "not-a-number", SPEC_BODY, SPEC_SIGNATURE)


def test_several_signatures_allow_key_rotation():
    old, new = new_secret(), new_secret()
    header = signature_header([new, old], "msg_1", 1000, b"{}")
    assert len(header.split()) == 2
    assert verify_signature(old, "msg_1", 1000, b"{}", header, now=1000)
    assert verify_signature(new, "msg_1", 1000, b"{}", header, now=1000)
    assert not verify_signature(new_secret(), "msg_1", 1000, b"{}", header, now=1000)


def test_malformed_secret_never_verifies():
    assert not verify_signature("not-whsec", SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE)
