"""The decision API for services: decide, decide in batches, report a reward (role ``client``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from agent import decision_log
from agent.observe import as_utc_naive
from api.decisions import (
    audit_reward,
    committed,
    count_decisions,
    decide_many,
    guard_for,
    lock_chain,
)
from api.deps import CallerDep, PolicyDep, SessionDep, SettingsDep, allow, caller_of
from api.problems import COMMON_ERRORS, Problem, problem_body, problem_responses
from api.schemas import (
    EVENT_ID_PATTERN,
    BatchRequest,
    BatchResponse,
    DecideRequest,
    DecideResponse,
    JsonBytes,
    RewardRequest,
    RewardResponse,
)

router = APIRouter(prefix="/api/v1", tags=["decisions"])
EventId = Annotated[
    str, Path(min_length=1, max_length=decision_log.EVENT_ID_MAX_LENGTH, pattern=EVENT_ID_PATTERN)
]


def _guard(request: Request, session: SessionDep) -> Any:
    now = as_utc_naive(None)
    state = request.app.state
    return guard_for(session, state.governance, state.thresholds, now), now


def _decide(
    request: Request, session: SessionDep, items: list[DecideRequest], policy: PolicyDep
) -> list[dict[str, Any] | Problem]:
    """Decide ``items``, log and audit them and commit (retried on a concurrent writer)."""
    caller = caller_of(request)

    def work() -> tuple[list[dict[str, Any] | Problem], list[dict[str, Any]]]:
        guard, now = _guard(request, session)
        return decide_many(session, items, policy.current, guard, now, caller.name)

    answers, rows = committed(session, work)
    count_decisions(rows)
    return answers


@router.post(
    "/decide",
    response_model=DecideResponse,
    dependencies=[allow("client")],
    responses=problem_responses(*COMMON_ERRORS),
)
def decide(body: DecideRequest, request: Request, session: SessionDep, policy: PolicyDep) -> Any:
    """Decide for one context; the decision is logged so its reward can be joined, and
    audited."""
    (answer,) = _decide(request, session, [body], policy)
    if isinstance(answer, Problem):
        raise answer
    return JsonBytes(answer)


@router.post(
    "/decide/batch",
    response_model=BatchResponse,
    dependencies=[allow("client")],
    responses=problem_responses(*COMMON_ERRORS),
)
def decide_batch(
    body: BatchRequest,
    request: Request,
    session: SessionDep,
    policy: PolicyDep,
    settings: SettingsDep,
) -> Any:
    """Decide for up to ``AUTOPILOT_API_MAX_BATCH`` contexts, each answered independently; one
    audit entry lists the batch's new decisions."""
    if len(body.items) > settings.api_max_batch:
        raise Problem(
            413, f"batch of {len(body.items)} items exceeds the limit of {settings.api_max_batch}"
        )
    answers = _decide(request, session, body.items, policy)
    items = [  # BatchItem's members, both always present as before
        {"status": a.status, "decision": None, "problem": problem_body(a.status, a.detail)}
        if isinstance(a, Problem)
        else {"status": 200, "decision": a, "problem": None}
        for a in answers
    ]
    return JsonBytes({"items": items})


@router.post(
    "/events/{event_id}/reward",
    response_model=RewardResponse,
    dependencies=[allow("client")],
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 410),
)
def report_reward(
    event_id: EventId, body: RewardRequest, session: SessionDep, caller: CallerDep
) -> Any:
    """Report the reward of a decision: 404 unknown, 409 already rewarded (the first stands),
    410 after the deadline (the default reward is applied). The report is audited."""

    def work() -> decision_log.RewardResult:
        lock_chain(session)  # before the reward's row: every chain writer locks in one order
        try:
            result = decision_log.report_reward(session, event_id, body.value)
        except LookupError as error:
            raise Problem(404, str(error).strip("'\"")) from None
        except decision_log.RewardConflict as error:
            raise Problem(409, str(error)) from None
        audit_reward(session, caller.name, body.value, result)
        return result

    result = committed(session, work)
    if result.expired:
        raise Problem(
            410,
            f"the reward window of {event_id!r} has closed; the default reward "
            f"{result.reward} stands",
            reward=result.reward,
            reward_source=result.reward_source,
        )
    return RewardResponse(
        event_id=result.event_id,
        reward=result.reward,
        reward_source=result.reward_source,  # type: ignore[arg-type]
        reward_joined_at=result.reward_joined_at,
        expired=False,
    )
