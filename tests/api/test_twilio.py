"""The Twilio-compatible call routes (api/routes/twilio.py): Basic auth as Twilio's, a Call resource,
Twilio's error shape, and a hang-up handed to the runtime. tests/sip/test_pipecat.py drives them from a
real pipecat bot on a real call."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import httpx

from dialer.outcome import Outcome
from dialer.storage import SqlStore
from tests.api.conftest import FakeRuntime, Tenant
from tests.api.test_calls import finished

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def url(account: UUID | str, call: UUID | str) -> str:
    return f"/2010-04-01/Accounts/{account}/Calls/{call}.json"


def twilio_error(response: httpx.Response, status: int, code: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["code"] == code and body["status"] == status and body["message"], body
    assert "success" not in body, "Twilio's shape, not ours"
    return body


async def test_status_completed_hangs_up_a_live_call_with_either_twilio_credential_pair(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    live = await finished(store, acme, None, at=T0)
    # AccountSid + AuthToken: the tenant id and a secret key.
    answer = await acme.anonymous.post(
        url(acme.id, live), data={"Status": "completed"}, auth=(str(acme.id), acme.sk)
    )
    assert answer.status_code == 200, answer.text
    call = answer.json()
    assert (call["sid"], call["account_sid"], call["status"]) == (str(live), str(acme.id), "completed")
    assert call["api_version"] == "2010-04-01" and call["uri"] == url(acme.id, live)
    assert call["direction"] == "outbound-api" and call["from"] and call["to"]
    assert runtime.hangups == [(acme.id, live)]

    # API key SID + secret: the key's id and the same secret key.
    again = await acme.anonymous.post(
        url(acme.id, live), data={"Status": "canceled"}, auth=(str(acme.sk_id), acme.sk)
    )
    assert again.status_code == 200 and runtime.hangups == [(acme.id, live)] * 2

    fetched = await acme.anonymous.get(url(acme.id, live), auth=(str(acme.id), acme.sk))
    assert fetched.json()["status"] == "queued", "the fake runtime hung nothing up: the record is as it was"


async def test_an_ended_call_answers_its_final_status_and_is_not_hung_up_again(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    busy = await finished(store, acme, Outcome.BUSY, at=T0)
    answered = await finished(store, acme, Outcome.ANSWERED, at=T0)
    auth = (str(acme.id), acme.sk)
    assert (await acme.anonymous.post(url(acme.id, busy), data={"Status": "completed"}, auth=auth)).json()[
        "status"
    ] == "busy"
    done = (await acme.anonymous.get(url(acme.id, answered), auth=auth)).json()
    assert (done["status"], done["duration"]) == ("completed", "60")
    assert done["start_time"] == "Mon, 02 Mar 2026 09:00:05 +0000"
    assert runtime.hangups == []


async def test_bad_credentials_answer_401_with_a_basic_challenge(
    acme: Tenant, other: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    live = await finished(store, acme, None, at=T0)
    path, form = url(acme.id, live), {"Status": "completed"}
    for auth in [
        None,
        (str(acme.id), "sk_live_wrong"),
        (str(other.id), acme.sk),  # another tenant's id as the user
        (str(uuid4()), acme.sk),
    ]:
        answer = await acme.anonymous.post(path, data=form, auth=auth)
        twilio_error(answer, 401, 20003)
        assert answer.headers["www-authenticate"].startswith("Basic")
    garbled = await acme.anonymous.post(path, data=form, headers={"Authorization": "Basic !!!"})
    twilio_error(garbled, 401, 20003)
    twilio_error(await acme.anonymous.post(path, data=form, auth=(str(acme.id), acme.pk)), 403, 20003)
    assert runtime.hangups == []


async def test_unknown_calls_and_other_accounts_answer_20404(
    acme: Tenant, other: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    live = await finished(store, acme, None, at=T0)
    form = {"Status": "completed"}
    auth = (str(acme.id), acme.sk)
    twilio_error(await acme.anonymous.post(url(acme.id, uuid4()), data=form, auth=auth), 404, 20404)
    twilio_error(await acme.anonymous.post(url(acme.id, "CA0123"), data=form, auth=auth), 404, 20404)
    # The other tenant's own credentials on Acme's account, and on its own account with Acme's call.
    twilio_error(
        await acme.anonymous.post(url(acme.id, live), data=form, auth=(str(other.id), other.sk)), 404, 20404
    )
    twilio_error(
        await acme.anonymous.post(url(other.id, live), data=form, auth=(str(other.id), other.sk)), 404, 20404
    )
    assert runtime.hangups == []


async def test_parameters_other_than_a_hang_up_are_refused(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    live = await finished(store, acme, None, at=T0)
    auth = (str(acme.id), acme.sk)
    for form in [{}, {"Status": "in-progress"}, {"Url": "https://bot.example/twiml"}]:
        twilio_error(await acme.anonymous.post(url(acme.id, live), data=form, auth=auth), 400, 20001)
    both = {"Status": "completed", "Twiml": "<Response/>"}
    body = twilio_error(await acme.anonymous.post(url(acme.id, live), data=both, auth=auth), 400, 20001)
    assert "Twiml" in str(body["message"])
    runtime.reject = "the call is not up on this gateway"
    refused = await acme.anonymous.post(url(acme.id, live), data={"Status": "completed"}, auth=auth)
    assert "not up" in str(twilio_error(refused, 400, 21220)["message"])
    assert runtime.hangups == []


async def test_the_twilio_routes_stay_out_of_the_openapi_document(acme: Tenant) -> None:
    paths = (await acme.anonymous.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/2010-04-01")]
