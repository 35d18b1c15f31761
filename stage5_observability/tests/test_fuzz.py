"""Schemathesis fuzzes the stage's view of the contract: no 5xx, no response that breaks it, valid data
accepted and invalid data refused, real tasks reached through links, and any bad token refused.

FUZZ_EXAMPLES sets the examples per operation (and the stateful scenarios); FUZZ_SEED replays a run.
The seed is printed once per stage, pass or fail.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis.checks import (content_type_conformance, negative_data_rejection, not_a_server_error,
                                 positive_data_acceptance, response_headers_conformance,
                                 response_schema_conformance, status_code_conformance)

from common import contract
from common.stages import stage_of_path

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 25)
SEED = int(os.environ.get("FUZZ_SEED") or secrets.randbits(32))


def valid_data_accepted(ctx, response, case):
    """positive_data_acceptance, but for a made-up cursor: the schema can say a cursor is a string,
    not that this API issued it, and the contract answers one it did not issue with 400; and for a
    reused Idempotency-Key: generated keys repeat across examples (a short string is a likely draw),
    and the key an earlier example used with another body is rightly refused with 422."""
    if case.operation.label == "GET /api/v1/tasks" and response.status_code == 400:
        if {error["field"] for error in response.json().get("errors", [])} == {"cursor"}:
            return None
    if case.operation.label == "POST /api/v1/tasks" and response.status_code == 422 and \
            "Idempotency-Key" in (case.headers or {}) and response.json().get("code") == "IDEMPOTENCY_KEY_MISMATCH":
        return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, valid_data_accepted, negative_data_rejection]

STAGE = stage_of_path(Path(__file__))
# The contract is a file, so the schema needs no running service; requests go to `service.url`.
# It is this stage's view of the contract: later stages' operations, headers and statuses are left out.
schema = schemathesis.openapi.from_dict(contract.openapi_for_stage(STAGE.number)).exclude(path="/docs")
schema.config.seed = SEED
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    # Each example is an HTTP round trip to a real service, so generation is never the slow part,
    # and the request bodies the contract allows (64 KiB) are large by Hypothesis' measure.
    # The service and the account are meant to be shared by every example: one running service,
    # one user whose token the examples use (a fresh service per example would be a restart each).
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module", autouse=True)
def print_the_seed(pytestconfig):
    """Print the seed on the terminal, even on success, so any run can be replayed."""
    with pytestconfig.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\n{STAGE.folder}: fuzz seed {SEED}, {EXAMPLES} examples per operation (FUZZ_SEED={SEED} replays it)")


@pytest.fixture
def fuzz_account(new_account):
    return new_account()


def token_unless_negated(case, account) -> dict[str, str]:
    """The account's token, except where schemathesis sends a missing or broken Authorization on purpose."""
    return {} if schema.is_security_param_negated(case) else account.headers


@pytest.mark.check("S1-AC17")
@schema.parametrize()
@SETTINGS
def test_generated_requests_get_no_5xx_and_conform_to_the_contract(case, service, fuzz_account):
    # The data is fuzzed here with a valid token; the token itself is fuzzed in its own test below.
    case.call_and_validate(base_url=service.url, headers=token_unless_negated(case, fuzz_account), checks=CHECKS)


def linked_schema():
    """The task routes with the contract's own links only. Hypothesis refuses a run whose replays behave
    differently, so nothing may depend on what earlier examples left behind: a username can be registered
    only once (a replayed sign-up answers 409), and links schemathesis would infer (from the task list to
    its items) depend on the tasks earlier examples created."""
    tasks = schema.include(tag="tasks")
    tasks.config.phases.stateful.inference.algorithms = []
    return tasks


@pytest.mark.check("S1-AC17")
def test_linked_calls_reach_real_tasks_and_conform_to_the_contract(service, fuzz_account):
    reached, failures = [], []

    @seed(SEED)
    class LinkedCalls(linked_schema().as_state_machine()):
        """Follows the contract's links: a created task is then fetched or canceled by its id."""

        def setup(self):
            self.created: set[str] = set()

        def get_call_kwargs(self, case):
            headers = token_unless_negated(case, fuzz_account)
            if case.headers and "Idempotency-Key" in case.headers:
                # A generated key repeats across examples, and a replay would meet the answer its first use
                # left behind (a replay or a 422): a fresh key keeps every run of a scenario alike.
                case.headers["Idempotency-Key"] = f"linked-{uuid.uuid4()}"
            return {"base_url": service.url, "headers": headers}

        def step(self, input):
            try:
                return super().step(input)
            except Exception as exc:
                failures.append(exc)
                raise

        def after_call(self, response, case):
            super().after_call(response, case)
            if case.operation.label == "POST /api/v1/tasks" and response.status_code in (201, 202):
                self.created.add(response.json()["id"])
            task_id = str((case.path_parameters or {}).get("task_id"))
            if task_id in self.created:
                assert response.status_code != 404, f"{case.operation.label} lost the task {task_id} it just created"
                reached.append(case.operation.label)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs, recorder=self.recorder)

    # Generation only, as schemathesis runs its own stateful phase: a shrunk replay would meet a service
    # whose state has moved on. A failing scenario is reported as it happened.
    try:
        LinkedCalls.run(settings=settings(SETTINGS, max_examples=max(EXAMPLES // 2, 5), stateful_step_count=6,
                                          phases=[Phase.generate]))
    except Flaky:
        # Hypothesis replays a failing scenario to report it, and the replay meets a service whose state has
        # moved on; report the failure as it first happened instead.
        if not failures:
            raise
        raise failures[0] from None
    assert reached, "no link led to a task the service created: the {task_id} routes only saw made-up ids"


PROTECTED = [operation for operation in (result.ok() for result in schema.get_all_operations())
             if operation.definition.raw.get("security", schema.raw_schema.get("security"))]


def _segment(document: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


def bad_tokens(valid: str) -> st.SearchStrategy[str]:
    """Authorization values that must all be refused: garbage, forged, tampered or unsigned tokens."""
    header, payload, signature = valid.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    # Header values as HTTP carries them: printable ASCII, no whitespace at either end.
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200).map(str.strip)
    base64url = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=80)

    def flipped(position: int, replacement: str) -> str:
        # Not the last character: its low bits may not reach the decoded signature.
        index = position % (len(signature) - 1)
        new = replacement if replacement != signature[index] else ("A" if replacement != "A" else "B")
        return f"Bearer {header}.{payload}.{signature[:index]}{new}{signature[index + 1:]}"

    return st.one_of(
        printable,
        printable.map(lambda text: f"Bearer {text}"),
        st.tuples(base64url, base64url, base64url).map(lambda parts: "Bearer " + ".".join(parts)),
        st.integers(min_value=0).flatmap(lambda i: st.sampled_from("AQgw_-9z").map(lambda c: flipped(i, c))),
        st.just(f"Bearer {_segment({'alg': 'none', 'typ': 'JWT'})}.{payload}."),
        st.dictionaries(st.sampled_from(["sub", "exp", "iat", "jti"]), st.integers() | printable, min_size=1)
        .map(lambda changes: f"Bearer {header}.{_segment({**claims, **changes})}.{signature}"),
        st.just(f"Basic {base64.b64encode(b'user:password').decode()}"),
        st.just(valid),  # the token without its "Bearer " scheme
    )


@pytest.mark.check("S1-AC17")
def test_fuzzed_authorization_headers_get_401_with_www_authenticate(service, fuzz_account):
    token = fuzz_account.token
    cases = st.sampled_from(PROTECTED).flatmap(lambda operation: operation.as_strategy())

    @seed(SEED)
    @settings(SETTINGS, max_examples=EXAMPLES * len(PROTECTED))
    @given(case=cases, authorization=bad_tokens(token))
    def refused(case, authorization):
        response = case.call(base_url=service.url, headers={"Authorization": authorization})
        said = f"{case.operation.label} with Authorization {authorization!r} answered {response.status_code}"
        assert response.status_code == 401, said
        assert response.headers.get("www-authenticate", [""])[0].startswith("Bearer"), f"{said} without WWW-Authenticate"
        assert response.json()["code"] == "UNAUTHORIZED", said

    refused()
