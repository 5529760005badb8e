"""The supervisor console: server-rendered HTML under ``/console``.

Pages: ``/console`` (live conversations with route, queue, priority, contact
reason, a sentiment sparkline and flags, refreshed by polling
``/console/live`` every 2 s; SLO and experiment panels) and
``/console/conversations/{id}`` (every turn's signals, the decision's
explanation lines and the handoff context). Plain Python string templates,
every interpolated value passed through ``html.escape``; the CSS and JS are
package files served from ``/console/static``, so nothing is fetched from
elsewhere and a strict Content-Security-Policy (``'self'`` only) holds. Text
shown is what the store holds, i.e. redacted when redaction is on.

Authentication: a browser cannot send a bearer header when it navigates, so
``/console/login`` takes an API key once (checked by the same
``Authenticator`` as ``/v1``) and sets an HttpOnly, SameSite=Strict cookie
``<key name>.<expiry>.<mac>``, where ``mac`` is HMAC-SHA256 over name and
expiry keyed with a digest of that key's configured sha256. Why keyed by the
configured digest rather than a random per-process secret: the session is
then valid on every worker process and replica and survives restarts (the
console polls, and polls land on any worker), the cookie never holds the key,
and removing or rotating a key ends its sessions at once. Forging one needs the
configured digest, which lives only in the server's configuration. With
``SWITCHBOARD_AUTH_DISABLED`` the console is open.

The listing reads one page of heads with ``ConversationStore.list_heads`` (one
query, no turns) and decodes only those; a poll first compares the page's
(id, version) stamp and sends rows only when something changed.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections.abc import Sequence
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.enums import MediaType, RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect

from routing.slo import evaluate, format_window, windows
from service.auth import ANONYMOUS, Authenticator
from service.conversations import ConversationHead, ConversationService, decode_head
from service.errors import NotFound, Unauthorized
from service.insights import Insights
from service.policy_source import PolicySource
from service.ratelimit import RateLimiter
from service.schemas import AnalysisResponse
from service.settings import ApiKey
from service.store.base import ConversationStore, Head

COOKIE = "switchboard_console"
SESSION_S = 8 * 3600
POLL_MS = 2000
DEFAULT_PAGE = 1000
MAX_PAGE = 5000
MAX_TURNS_SHOWN = 1000
EXPERIMENT_WINDOW = ("7d", 7 * 86400)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
AfterParam = Annotated[
    str | None, Parameter(description="List the conversations with ids after this one.", max_length=128)
]
LimitParam = Annotated[int, Parameter(description="How many heads one page reads.", ge=1, le=MAX_PAGE)]
StampParam = Annotated[
    str | None, Parameter(description="The stamp of the rows shown (unchanged: no rows).", max_length=64)
]
IdParam = Annotated[str, Parameter(description="The conversation id.", max_length=128)]
NameParam = Annotated[str, Parameter(description="The asset's file name.", max_length=64)]
_STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}


def esc(value: object) -> str:
    """``value`` as text safe inside HTML element content and quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


# -- sessions --------------------------------------------------------------------------------------


class Sessions:
    """Issues and checks console session cookies (see the module docstring for the scheme)."""

    def __init__(
        self,
        authenticator: Authenticator,
        keys: Sequence[ApiKey],
        ttl_s: float = SESSION_S,
        clock: Any = time.time,
    ) -> None:
        self.authenticator = authenticator
        self._secrets = {
            key.name: hashlib.sha256(b"switchboard-console-session\0" + bytes.fromhex(key.sha256)).digest()
            for key in keys
        }
        self.ttl_s = ttl_s
        self._clock = clock

    @property
    def open(self) -> bool:
        """True when authentication is disabled: every request is a supervisor."""
        return self.authenticator.disabled

    def login(self, api_key: str) -> str:
        """Check ``api_key``; return a cookie value. Raises ``Unauthorized`` for a wrong key."""
        name = self.authenticator.authenticate(f"Bearer {api_key.strip()}")
        expiry = int(self._clock() + self.ttl_s)
        return f"{name}.{expiry}.{self._mac(name, expiry)}"

    def _mac(self, name: str, expiry: int) -> str:
        secret = self._secrets.get(name, b"")
        return hmac.new(secret, f"{name}\0{expiry}".encode(), hashlib.sha256).hexdigest()

    def check(self, cookie: str | None) -> str | None:
        """The key name a cookie was issued for, or None (absent, forged, expired, key removed)."""
        if self.open:
            return ANONYMOUS
        if not cookie:
            return None
        parts = cookie.rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        name, expiry_text, mac = parts
        expiry = int(expiry_text)
        if name not in self._secrets or expiry <= self._clock():
            return None
        if not hmac.compare_digest(mac, self._mac(name, expiry)):
            return None
        return name


# -- rendering helpers -----------------------------------------------------------------------------


def sparkline(scores: Sequence[float], width: int = 96, height: int = 22) -> str:
    """Inline SVG polyline of sentiment scores in [-1, 1] (a dash when there are none)."""
    if not scores:
        return '<span class="muted">&mdash;</span>'
    values = [max(-1.0, min(1.0, float(s))) for s in scores]
    step = width / max(1, len(values) - 1)
    points = " ".join(
        f"{(i * step if len(values) > 1 else width / 2):.1f},{(1 - (v + 1) / 2) * (height - 2) + 1:.1f}"
        for i, v in enumerate(values)
    )
    last = values[-1]
    tone = "neg" if last < -0.2 else "pos" if last > 0.2 else "neu"
    title = esc(", ".join(f"{v:+.2f}" for v in values))
    return (
        f'<svg class="spark {tone}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="sentiment {title}"><title>{title}</title>'
        f'<line class="zero" x1="0" y1="{height / 2:.1f}" x2="{width}" y2="{height / 2:.1f}"/>'
        f'<polyline points="{points}"/></svg>'
    )


def _chips(items: Sequence[str], kind: str = "flag") -> str:
    return "".join(f'<span class="chip {kind}">{esc(item)}</span>' for item in items)


def _page(title: str, body: str, *, user: str | None, refresh: bool = False) -> str:
    who = ""
    if user is not None and user != ANONYMOUS:
        who = (
            f'<form method="post" action="/console/logout" class="logout"><span>{esc(user)}</span>'
            '<button type="submit">Log out</button></form>'
        )
    script = '<script src="/console/static/console.js" defer></script>' if refresh else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · Switchboard</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        f"{script}</head><body>"
        f'<header><a class="brand" href="/console">Switchboard console</a>{who}</header>'
        f"<main>{body}</main></body></html>"
    )


def _html(content: str, status: int = 200) -> Response[str]:
    return Response(content=content, status_code=status, media_type=MediaType.HTML, headers=_HEADERS)


# -- the live list ---------------------------------------------------------------------------------


class Row(msgspec.Struct, frozen=True):
    """One live conversation as the list shows it."""

    id: str
    route: str
    queue: str
    priority: int
    reason: str
    category: str
    scores: tuple[float, ...]
    flags: tuple[str, ...]
    turns: int
    updated_at: float


def row_of(conversation_id: str, stored: Head, head: ConversationHead) -> Row:
    """The list row of a decoded head."""
    decision = head.decision
    signals = head.signals
    reason = signals.reason
    flags = list(decision.flags) if decision is not None else []
    if decision is not None and decision.guardrail:
        flags.append(f"guardrail:{decision.guardrail}")
    if signals.loop_count > 1:
        flags.append("bot loop")
    return Row(
        id=conversation_id,
        route=decision.route if decision is not None else "",
        queue=decision.queue if decision is not None else "",
        priority=decision.priority if decision is not None else 0,
        reason=reason.intent if reason.status == "confident" else "(not yet confident)",
        category=reason.category,
        scores=tuple(signals.customer.recent),
        flags=tuple(flags),
        turns=stored.turns,
        updated_at=stored.updated_at,
    )


def render_rows(rows: Sequence[Row]) -> str:
    """The ``<tr>`` elements of the live list."""
    out = []
    for row in rows:
        link = f"/console/conversations/{quote(row.id, safe='')}"
        out.append(
            f'<tr data-id="{esc(row.id)}"><td><a href="{esc(link)}">{esc(row.id)}</a></td>'
            f'<td><span class="route {esc(row.route)}">{esc(row.route)}</span></td>'
            f"<td>{esc(row.queue)}</td><td class=num>{row.priority}</td>"
            f'<td>{esc(row.reason)}<div class="muted">{esc(row.category)}</div></td>'
            f"<td>{sparkline(row.scores)}</td><td>{_chips(row.flags)}</td>"
            f"<td class=num>{row.turns}</td></tr>"
        )
    return "".join(out)


def stamp_of(heads: Sequence[tuple[str, Head]]) -> str:
    """A short digest of the page's (id, version) pairs: equal stamps, nothing to redraw."""
    digest = hashlib.blake2b(digest_size=8)
    for conversation_id, head in heads:
        digest.update(f"{conversation_id}\0{head.version}\n".encode())
    return digest.hexdigest()


async def live_page(
    store: ConversationStore, limit: int, after: str | None
) -> tuple[list[tuple[str, Head]], bool]:
    """One page of heads (``limit`` at most, ids after ``after``) and whether more follow."""
    heads = await store.list_heads(limit + 1, after)  # one more tells whether a next page exists
    return heads[:limit], len(heads) > limit


def open_rows(heads: Sequence[tuple[str, Head]]) -> list[Row]:
    """The rows of the open conversations among ``heads`` (closed ones are left out)."""
    return [
        row_of(cid, stored, head)
        for cid, stored in heads
        if not stored.closed and not (head := decode_head(stored.data)).closed
    ]


class LivePage(msgspec.Struct):
    """``GET /console/live``: the page's stamp; rows (HTML) only when the stamp changed."""

    stamp: str
    changed: bool
    count: int | None = None
    rows: str | None = None
    more: bool = False


# -- panels ----------------------------------------------------------------------------------------


async def slo_panel(insights: Insights | None, policies: PolicySource) -> str:
    """The SLOs of the policy, each with its burn rates and whether an alert tier fires."""
    slos = list(getattr(policies.policy, "slos", ()) or ())
    if not slos or insights is None:
        return '<section class="panel" id="slos"><h2>SLOs</h2><p class="muted">no SLOs declared</p></section>'
    bucket_s = insights.store.bucket_s
    counts = await insights.totals(windows(slos, bucket_s))
    rows = []
    for slo in slos:
        evaluation = evaluate(slo, counts, bucket_s)
        firing = [t.tier.severity for t in evaluation.tiers if t.firing]
        status = f"burning ({', '.join(firing)})" if firing else "ok"
        burns = ", ".join(
            f"{esc(b.window)}: {'–' if b.burn_rate is None else f'{b.burn_rate:.2f}×'} ({b.bad}/{b.total})"
            for b in evaluation.burns.values()
        )
        rows.append(
            f"<tr><td>{esc(slo.id)}</td><td>{esc(slo.objective)}</td><td>{esc(format_window(slo.window_s))}</td>"
            f'<td><span class="chip {"flag" if firing else "ok"}">{esc(status)}</span></td>'
            f'<td class="muted">{burns}</td></tr>'
        )
    return (
        '<section class="panel" id="slos"><h2>SLOs</h2><table><thead><tr><th>SLO</th><th>objective</th>'
        f"<th>window</th><th>status</th><th>burn rates</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></section>"
    )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


async def experiment_panel(insights: Insights | None, policies: PolicySource) -> str:
    """Each experiment's arms: conversations, containment with its 95% interval, and against the
    control the difference and whether it is significant."""
    if insights is None:
        return ""
    declared: dict[str, list[str]] = {}
    experiment = policies.policy.experiment
    if experiment is not None:
        declared[experiment.id] = [v.id for v in experiment.variants]
    window, window_s = EXPERIMENT_WINDOW
    overview = await insights.experiments(window, window_s, declared)
    if not overview.experiments:
        body = f'<p class="muted">no experiment data in the last {esc(window)}</p>'
    else:
        parts = []
        for report in overview.experiments:
            rows = []
            for arm in report.variants:
                rate = arm.summary.rates.get("containment")
                interval = (
                    f"{_pct(rate.value)} [{_pct(rate.low)}, {_pct(rate.high)}]" if rate is not None else "–"
                )
                compared = arm.vs_control.get("containment")
                if arm.control or compared is None:
                    versus = '<span class="muted">control</span>' if arm.control else "–"
                else:
                    sign = "+" if (compared.difference or 0) >= 0 else ""
                    diff = (
                        "–" if compared.difference is None else f"{sign}{compared.difference * 100:.1f} pts"
                    )
                    verdict = "significant" if compared.significant else "not significant"
                    tone = "ok" if compared.significant else "muted"
                    versus = f'{esc(diff)} <span class="chip {tone}">{verdict}</span>'
                rows.append(
                    f"<tr><td>{esc(arm.variant)}</td><td class=num>{arm.summary.conversations}</td>"
                    f"<td>{esc(interval)}</td><td>{versus}</td></tr>"
                )
            parts.append(
                f"<h3>{esc(report.experiment)}</h3><table><thead><tr><th>arm</th><th>n</th>"
                f"<th>containment (95% CI)</th><th>vs control</th></tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>"
            )
        body = "".join(parts)
    return f'<section class="panel" id="experiments"><h2>Experiments ({esc(window)})</h2>{body}</section>'


# -- the conversation page -------------------------------------------------------------------------


def render_conversation(analysis: AnalysisResponse, truncated: bool) -> str:
    """The conversation view: decision and explanation, handoff summary, and every turn."""
    decision = analysis.decision
    context = analysis.context
    reason = analysis.contact_reason
    explanation = "".join(
        f'<li class="{esc(line.kind)}{" held" if line.held else ""}">{esc(line.text)}</li>'
        for line in decision.explanation
    )
    summary = "".join(
        f"<li><b>turn {line.turn}</b> · {esc(line.speaker)} · {esc(', '.join(line.roles))} · "
        f"{esc(line.sentiment_label)}<div>{esc(line.text)}</div></li>"
        for line in context.summary
    )
    escalations = _chips([e.flag for e in context.escalations])
    scores = [t.sentiment.score for t in analysis.turns if t.speaker == "customer"]
    turns = []
    for turn in analysis.turns:
        intent = turn.intent
        act = turn.act
        turns.append(
            f'<tr class="{esc(turn.speaker)}"><td class=num>{turn.index}</td><td>{esc(turn.speaker)}</td>'
            f'<td class="text">{esc(turn.text)}</td>'
            f'<td><span class="sent {esc(turn.sentiment.label)}">{esc(turn.sentiment.label)}</span> '
            f"{turn.sentiment.score:+.2f}</td><td>{_chips(turn.emotions, 'emotion')}</td>"
            f"<td>{esc(intent.label) if intent else '–'}"
            f"{f' <span class=muted>{intent.confidence:.2f}</span>' if intent else ''}</td>"
            f"<td>{esc(act.label) if act else '–'}</td></tr>"
        )
    more = (
        f'<p class="muted">showing the first {MAX_TURNS_SHOWN} of {analysis.turn_count} turns</p>'
        if truncated
        else ""
    )
    state = "closed" if analysis.closed else "live"
    return (
        f'<p><a href="/console">&larr; live conversations</a></p>'
        f"<h1>Conversation <code>{esc(analysis.conversation_id)}</code> "
        f'<span class="chip muted">{state}</span></h1>'
        '<div class="grid">'
        '<section class="panel" id="decision"><h2>Decision</h2>'
        f'<p class="summary">{esc(decision.summary)}</p>'
        f'<dl><dt>route</dt><dd><span class="route {esc(decision.route)}">{esc(decision.route)}</span></dd>'
        f"<dt>queue</dt><dd>{esc(decision.queue)}</dd><dt>priority</dt><dd>{decision.priority}</dd>"
        f"<dt>rule</dt><dd>{esc(decision.rule)}</dd>"
        f"<dt>variant</dt><dd>{esc(decision.variant or '–')}</dd>"
        f"<dt>churn risk</dt><dd>{decision.churn_risk:.2f}</dd>"
        f"<dt>flags</dt><dd>{_chips(decision.flags) or '–'}</dd></dl>"
        f'<h3>Explanation</h3><ol class="explanation">{explanation}</ol></section>'
        '<section class="panel" id="handoff"><h2>Handoff context</h2>'
        f"<dl><dt>contact reason</dt><dd>{esc(reason.intent)} "
        f'<span class="muted">({esc(reason.category)}, {esc(reason.status)}, '
        f"{reason.confidence:.2f})</span></dd>"
        f"<dt>sentiment</dt><dd>{sparkline(scores, 200, 36)} {esc(analysis.sentiment.label)} "
        f'<span class="muted">trend {esc(analysis.sentiment.trend)}</span></dd>'
        f"<dt>emotions</dt><dd>{_chips(analysis.emotions, 'emotion') or '–'}</dd>"
        f"<dt>escalations</dt><dd>{escalations or '–'}</dd>"
        f"<dt>turns</dt><dd>{analysis.turn_count}</dd></dl>"
        f'<h3>Summary</h3><ul class="summary-lines">{summary}</ul></section>'
        "</div>"
        '<section class="panel" id="turns"><h2>Turns</h2>'
        "<table><thead><tr><th>#</th><th>speaker</th><th>text (redacted)</th><th>sentiment</th>"
        "<th>emotions</th><th>intent</th><th>act</th></tr></thead>"
        f"<tbody>{''.join(turns)}</tbody></table>{more}</section>"
    )


# -- the router ------------------------------------------------------------------------------------


def _login_page(message: str = "") -> str:
    error = f'<p class="error" role="alert">{esc(message)}</p>' if message else ""
    return _page(
        "Log in",
        '<section class="panel login"><h1>Supervisor console</h1>'
        "<p>Log in with a Switchboard API key. The key is checked once; the browser keeps a "
        "signed session cookie, never the key.</p>"
        f'{error}<form method="post" action="/console/login">'
        '<label for="api_key">API key</label>'
        '<input id="api_key" name="api_key" type="password" autocomplete="current-password" required>'
        '<button type="submit">Log in</button></form></section>',
        user=None,
    )


def build_console_router(
    *,
    store: ConversationStore,
    conversations: ConversationService,
    policies: PolicySource,
    insights: Insights | None,
    authenticator: Authenticator,
    keys: Sequence[ApiKey],
    limiter: RateLimiter | None = None,
) -> Router:
    """Routes under ``/console`` (left out of the OpenAPI document). ``store`` is the raw store
    (listing pages of heads); ``limiter`` throttles login attempts per client address."""
    sessions = Sessions(authenticator, keys)
    static = {name: (resources.files("service") / "static" / name).read_bytes() for name in _STATIC}

    def user_of(request: Request[Any, Any, Any]) -> str | None:
        return sessions.check(request.cookies.get(COOKIE))

    def to_login() -> Response[Any]:
        return Redirect("/console/login", status_code=303, headers=_HEADERS)

    @get("/static/{name:str}", include_in_schema=False, sync_to_thread=False)
    def static_file(name: NameParam) -> Response[bytes]:
        """The console's CSS and JS (package files); no session needed."""
        if name not in static:
            raise NotFound(f"no console asset {name}")
        return Response(
            content=static[name],
            media_type=_STATIC[name],
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    @get("/login", include_in_schema=False, sync_to_thread=False)
    def login_form(request: Request[Any, Any, Any]) -> Response[Any]:
        """The login form (straight to the console when already logged in or auth is off)."""
        if user_of(request) is not None:
            return Redirect("/console", status_code=303, headers=_HEADERS)
        return _html(_login_page())

    @post("/login", include_in_schema=False, status_code=303)
    async def login(
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Check the key; set the session cookie and go to the console, or show the form again (401)."""
        if limiter is not None:
            host = request.client.host if request.client is not None else "unknown"
            await limiter.take(f"console-login:{host}")
        if sessions.open:
            return Redirect("/console", status_code=303, headers=_HEADERS)
        try:
            cookie = sessions.login(str(data.get("api_key", "")))
        except Unauthorized:
            return _html(_login_page("That API key is not valid."), status=401)
        response: Response[Any] = Redirect("/console", status_code=303, headers=_HEADERS)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(sessions.ttl_s),
            path="/console",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @post("/logout", include_in_schema=False, status_code=303)
    async def logout() -> Response[Any]:
        """Forget the session cookie."""
        response: Response[Any] = Redirect("/console/login", status_code=303, headers=_HEADERS)
        response.delete_cookie(COOKIE, path="/console")
        return response

    @get("/", include_in_schema=False)
    async def index(
        request: Request[Any, Any, Any], after: AfterParam = None, limit: LimitParam = DEFAULT_PAGE
    ) -> Response[Any]:
        """Live conversations (one page of ``limit`` heads after id ``after``) and the panels."""
        user = user_of(request)
        if user is None:
            return to_login()
        limit = max(1, min(MAX_PAGE, limit))
        heads, more = await live_page(store, limit, after)
        rows, stamp = open_rows(heads), stamp_of(heads)
        next_link = ""
        if more:
            last = heads[-1][0]  # the last head, closed or not, is the cursor
            href = f"/console?after={quote(last, safe='')}&limit={limit}"
            next_link = f' · <a href="{esc(href)}">next page &rarr;</a>'
        query = f"limit={limit}" + (f"&after={quote(after, safe='')}" if after else "")
        body = (
            '<div class="grid wide">'
            '<section class="panel" id="live">'
            f'<h2>Live conversations <span id="count" class="count">{len(rows)}</span></h2>'
            f'<p class="muted" id="status">updates every {POLL_MS // 1000} s{next_link}</p>'
            f'<table id="conversations" data-poll="/console/live?{esc(query)}" data-stamp="{stamp}" '
            f'data-interval="{POLL_MS}"><thead><tr><th>conversation</th><th>route</th><th>queue</th>'
            "<th>priority</th><th>contact reason</th><th>sentiment</th><th>flags</th><th>turns</th>"
            f"</tr></thead><tbody>{render_rows(rows)}</tbody></table></section>"
            f"<aside>{await slo_panel(insights, policies)}"
            f"{await experiment_panel(insights, policies)}</aside>"
            "</div>"
        )
        return _html(_page("Live conversations", body, user=user, refresh=True))

    @get("/live", include_in_schema=False)
    async def live(
        request: Request[Any, Any, Any],
        after: AfterParam = None,
        limit: LimitParam = DEFAULT_PAGE,
        stamp: StampParam = None,
    ) -> Response[Any]:
        """The poll: the page's stamp, and its rows as HTML only when the stamp differs."""
        if user_of(request) is None:
            raise Unauthorized("log in at /console/login")
        limit = max(1, min(MAX_PAGE, limit))
        heads, more = await live_page(store, limit, after)
        current = stamp_of(heads)
        if stamp == current:
            page = LivePage(stamp=current, changed=False)
        else:
            rows = open_rows(heads)
            page = LivePage(stamp=current, changed=True, count=len(rows), rows=render_rows(rows), more=more)
        return Response(content=msgspec.json.encode(page), media_type=MediaType.JSON, headers=_HEADERS)

    @get("/conversations/{conversation_id:str}", include_in_schema=False)
    async def conversation(request: Request[Any, Any, Any], conversation_id: IdParam) -> Response[Any]:
        """One conversation: every turn's signals (redacted text), the decision and its explanation."""
        user = user_of(request)
        if user is None:
            return to_login()
        try:
            analysis = await conversations.get(conversation_id, limit=MAX_TURNS_SHOWN)
        except NotFound:
            body = (
                '<p><a href="/console">&larr; live conversations</a></p>'
                f"<h1>No live conversation <code>{esc(conversation_id)}</code></h1>"
                '<p class="muted">It was never created, was erased, or expired.</p>'
            )
            return _html(_page("Not found", body, user=user), status=404)
        truncated = analysis.next_after is not None
        return _html(
            _page(f"Conversation {conversation_id}", render_conversation(analysis, truncated), user=user)
        )

    return Router(
        path="/console",
        route_handlers=[static_file, login_form, login, logout, index, live, conversation],
        include_in_schema=False,
    )
