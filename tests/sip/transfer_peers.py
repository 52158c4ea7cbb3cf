"""The pieces of the ``refer_trunk`` SIPp scenario: what the callee does with REFERs, what the human does."""

from __future__ import annotations

HUMAN = "+14155550142"  # the human a call is transferred to (fictional)

_RESPONSE = """  <send{attrs}>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:]{tag}
      [last_Call-ID:]
      {cseq}
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
"""

_IN_DIALOG = """  <send retrans="500">
    <![CDATA[
      {method} [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$our_to]
      To: [$their_from]
      [last_Call-ID:]
      CSeq: {cseq} {method}
      [routes]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
{headers}      Content-Length: {length}
{body}    ]]>
  </send>
"""

_ANSWER_SDP = """  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag02[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
"""

_TAG = ";tag=[pid]SIPpTag02[call_number]"


def response(status: str, *, tag: bool = False, cseq: str = "[last_CSeq:]", next_label: str = "") -> str:
    attrs = f' next="{next_label}"' if next_label else ""
    return _RESPONSE.format(attrs=attrs, status=status, tag=_TAG if tag else "", cseq=cseq)


def waits_for_bye() -> str:
    """The callee's end: our BYE, answered."""
    return '  <recv request="BYE"/>\n' + response("200 OK", next_label="done")


def notify(cseq: int, sipfrag: str, final: bool = False) -> str:
    """A NOTIFY of the REFER's progress carrying ``sipfrag`` (e.g. "SIP/2.0 100 Trying"), answered 200."""
    state = "terminated;reason=noresource" if final else "active;expires=60"
    headers = f"      Event: refer\n      Subscription-State: {state}\n      Content-Type: message/sipfrag\n"
    body = f"\n      {sipfrag}\n"
    message = _IN_DIALOG.format(method="NOTIFY", cseq=cseq, headers=headers, length="[len]", body=body)
    return message + '  <recv response="200"/>\n'


def answers_refer(refer_to: str, status: str, notifies: str = "") -> str:
    """The callee answers our REFER (Refer-To must match the regexp ``refer_to``) with ``status`` and
    sends ``notifies``; the call goes on."""
    check = (
        '  <recv request="REFER">\n    <action>\n'
        f'      <ereg regexp="{refer_to}" search_in="hdr" header="Refer-To:"'
        ' check_it="true" assign_to="to"/>\n'
        '    </action>\n  </recv>\n  <Reference variables="to"/>\n'
    )
    return check + response(status) + notifies


def takes_refer(refer_to: str, status: str, notifies: str = "") -> str:
    """``answers_refer``, then the callee waits for our BYE."""
    return answers_refer(refer_to, status, notifies) + waits_for_bye()


def sends_refer(accepted: bool) -> str:
    """The callee's PBX REFERs the call to HUMAN on this same trunk: refused (603, then it waits for
    our BYE) or accepted (202, our NOTIFYs up to the final 200, then it hangs up itself)."""
    headers = (
        f"      Refer-To: <sip:{HUMAN}@[local_ip]:[local_port]>\n"
        "      Referred-By: <sip:pbx@[local_ip]:[local_port]>\n"
    )
    refer = _IN_DIALOG.format(method="REFER", cseq=1, headers=headers, length="0", body="")
    if not accepted:
        return refer + '  <recv response="603"/>\n' + waits_for_bye()
    bye = _IN_DIALOG.format(method="BYE", cseq=2, headers="", length="0", body="")
    # pjsua reports the new leg in NOTIFY sipfrags: 100 Trying, then the human's 180 and 200.
    notifies = "".join(
        f'  <recv request="NOTIFY">\n    <action>\n      <ereg regexp="{frag}" search_in="body"'
        f' check_it="true" assign_to="frag{i}"/>\n    </action>\n  </recv>\n'
        f'  <Reference variables="frag{i}"/>\n' + response("200 OK")
        for i, frag in enumerate(("SIP/2.0 100", "SIP/2.0 180", "SIP/2.0 200"))
    )
    return refer + '  <recv response="202"/>\n' + notifies + bye + '  <recv response="200" next="done"/>\n'


def human(kind: str) -> str:
    """The human's leg: ``answer`` (then our BYE), ``busy`` (486) or ``ring`` (until our CANCEL)."""
    ringing = response("180 Ringing", tag=True)
    if kind == "answer":
        return (
            ringing + _ANSWER_SDP + '  <recv request="ACK"/>\n  <recv request="BYE"/>\n' + response("200 OK")
        )
    if kind == "busy":
        return response("486 Busy Here", tag=True) + '  <recv request="ACK"/>\n'
    assert kind == "ring"
    return (
        ringing
        + '  <recv request="CANCEL"/>\n'
        + response("200 OK", tag=True)
        + response("487 Request Terminated", tag=True, cseq="CSeq: [$invite_cseq] INVITE")
        + '  <recv request="ACK"/>\n'
    )


def fill(callee: str, human_leg: str = "") -> dict[str, str]:
    """The ``fill`` of Sipp.start for the ``refer_trunk`` scenario."""
    return {
        "HUMAN": HUMAN.lstrip("+"),
        "CALLEE": callee,
        "HUMAN_LEG": human_leg or '  <pause milliseconds="1"/>\n',
    }
