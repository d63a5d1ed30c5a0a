"""Login, logout, who am I, user administration and API keys.

A failed login answers one message whether or not the user exists (the password is checked against a
dummy hash for unknown names), and N failures lock the username (or throttle the address) for a while.
Admins manage only users and keys whose estates lie within their own: others are a 404 to them. No
response carries a password, a hash or a session token in its body; an API key is shown once, when made.
"""

import logging
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError

from gateway.api.audit import annotate
from gateway.api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Principal,
    TokenAuth,
    public,
    require,
)
from gateway.auth import AccountError, Accounts, ApiKey, LoginRefused, PasswordPolicyError, User

__all__ = ["users_router"]

log = logging.getLogger(__name__)
# regulator: no rank, KPIs and reports of every estate only (gateway/auth/tenancy.py)
Role = Literal["viewer", "operator", "supervisor", "admin", "regulator"]
Job = Literal["guard", "shift_leader", "engineer", "fire_control", "manager"]  # gateway/auth/jobs.py
_ESTATES = "Estate ids, company:<id> (every estate of that company, also later ones), or ['*']"
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class LoginIn(BaseModel):
    username: str = Field(max_length=128)
    password: str = Field(max_length=1024)


class MeOut(BaseModel):
    username: str
    display_name: str
    role: Role
    estates: list[str] = Field(description="Estate ids, or ['*'] for every estate")
    job: Job | None = Field(None, description="保安 guard, 班长 shift_leader, 工程 engineer, ...")
    via: str = Field(description="session | key | token")
    csrf: str | None = Field(description="Send as X-CSRF-Token on unsafe calls (cookie sessions only)")


class UserOut(BaseModel):
    username: str
    display_name: str
    role: Role
    estates: list[str]
    job: Job | None = None
    disabled: bool
    created_at: float
    updated_at: float


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=64, description="a-z 0-9 _ . @ -")
    password: str = Field(min_length=1, max_length=1024, description="At least 10 characters")
    role: Role | None = Field(None, description="Default: the job's rank (give a role or a job)")
    estates: list[str] = Field(min_length=1, description=_ESTATES)
    display_name: str = Field("", max_length=100)
    job: Job | None = Field(
        None,
        description="保安 guard, 班长 shift_leader, 工程 engineer, 消防中控 "
        "fire_control, 经理 manager: maps onto a rank and extra rights",
    )


class UserPatch(BaseModel):
    role: Role | None = None
    estates: list[str] | None = Field(None, min_length=1)
    disabled: bool | None = Field(None, description="true also revokes the user's sessions and keys")
    password: str | None = Field(None, max_length=1024, description="A reset; revokes sessions and keys")
    display_name: str | None = Field(None, max_length=100)
    job: Job | Literal[""] | None = Field(None, description='"" removes the job')


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="What uses it, e.g. 'bms-bridge'")
    owner: str | None = Field(None, description="The user it acts for (default: you); it never has more")
    role: Role | None = Field(None, description="Default: the owner's role")
    estates: list[str] | None = Field(None, min_length=1, description="Default: the owner's estates")
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="Default: never expires")


class KeyOut(BaseModel):
    key_id: str
    name: str
    owner: str
    role: Role
    estates: list[str]
    created_by: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as a digest")


def _user_out(user: User) -> UserOut:
    return UserOut(
        username=user.username, display_name=user.display_name, role=user.role,
        estates=list(user.estates), job=user.job, disabled=user.disabled, created_at=user.created_at,
        updated_at=user.updated_at,
    )  # fmt: skip


def _key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        key_id=key.key_id, name=key.name, owner=key.owner, role=key.role,
        estates=list(key.estates), created_by=key.created_by, created_at=key.created_at,
        expires_at=key.expires_at, revoked_at=key.revoked_at, last_used_at=key.last_used_at,
    )  # fmt: skip


def safe_next(target: str | None) -> str:
    """A same-origin path to go to after a form login; anything else goes to '/'."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 for c in target):
        return "/"
    return target


def _one_estate(estates: tuple[str, ...] | list[str]) -> str:
    """The estate to file an audit entry under: the one estate, or '' (seen by all-estate readers)."""
    return estates[0] if len(estates) == 1 and estates[0] != "*" else ""


def _bad_request(exc: AccountError) -> HTTPException:
    return HTTPException(422, str(exc))


def _accounts(auth: TokenAuth) -> Accounts:
    if auth.accounts is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "user accounts are not enabled")
    return auth.accounts


async def _managed(auth: TokenAuth, user: Principal, username: str) -> User:
    """A user the caller may manage (all its estates within the caller's), else 404."""
    found = await _accounts(auth).get_user(username)
    if found is None or not user.covers(auth.scope_of(found.estates)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "user not found")
    return found


def _within(auth: TokenAuth, user: Principal, estates: list[str] | tuple[str, ...]) -> None:
    """Company scopes are judged by the estates they hold now; a company the caller cannot see whole
    is 'not found' like an estate."""
    if not user.covers(auth.scope_of(estates)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "estate not found")


def _set_cookies(auth: TokenAuth, response: Response, request: Request, token: str, csrf: str) -> None:
    secure = auth.settings.cookie_secure or request.url.scheme == "https"
    age = int(auth.settings.session_max)
    response.set_cookie(SESSION_COOKIE, token, max_age=age, path="/", secure=secure, httponly=True,
                        samesite="strict")  # fmt: skip
    response.set_cookie(CSRF_COOKIE, csrf, max_age=age, path="/", secure=secure, httponly=False,
                        samesite="strict")  # fmt: skip


async def _login_input(request: Request) -> tuple[str, str, str | None, bool]:
    """(username, password, next, whether it came from a form) from a JSON body or a form post."""
    if request.headers.get("content-type", "").startswith(_FORMS):
        data = await request.form()
        username, password = str(data.get("username", ""))[:128], str(data.get("password", ""))[:1024]
        return username, password, str(data.get("next", "")) or None, True
    try:
        body = LoginIn.model_validate_json(await request.body())
    except ValidationError:
        raise HTTPException(422, "give username and password") from None
    return body.username, body.password, None, False


def _refused(auth: TokenAuth, exc: LoginRefused, form: bool, nxt: str | None) -> Response:
    """One answer for a wrong name, a wrong password and a disabled user; 429 while locked."""
    if form:
        back = f"{auth.settings.login_page}?error={exc.reason}&next={quote(safe_next(nxt))}"
        return RedirectResponse(back, status.HTTP_303_SEE_OTHER)
    if exc.reason == "invalid":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid username or password")
    raise HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "too many failed logins; try again later",
        {"Retry-After": str(max(1, int(exc.retry_after)))},
    )


def users_router(auth: TokenAuth) -> APIRouter:
    router = APIRouter(tags=["users"])
    _session_routes(router, auth)
    _user_routes(router, auth)
    _key_routes(router, auth)
    return router


def _session_routes(router: APIRouter, auth: TokenAuth) -> None:
    Caller = Annotated[Principal, Depends(auth.dependency)]

    @router.post(
        "/auth/login",
        dependencies=[public()],
        response_model=MeOut,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": LoginIn.model_json_schema()},
                    "application/x-www-form-urlencoded": {
                        "schema": {"type": "object", "properties": {
                            "username": {"type": "string"}, "password": {"type": "string"},
                            "next": {"type": "string", "description": "Same-origin path to go to"}}},
                    },
                },
            },
            "responses": {"303": {"description": "Form posts: redirect to `next` (or back to login)"}},
        },
    )  # fmt: skip
    async def login(request: Request) -> Response:
        """Log in with a JSON body (answers JSON and sets the cookies) or the console's login form
        (answers 303 to `next`)."""
        store = _accounts(auth)
        origin = request.headers.get("origin")
        # Host only, not scheme: behind a TLS-terminating proxy the browser says https, we see http.
        if origin and urlsplit(origin).netloc != request.url.netloc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin login refused")
        username, password, nxt, form = await _login_input(request)
        address = auth.address(request)
        annotate(request, actor=username.strip().lower()[:64] or "-")
        try:
            result = await store.login(username, password, address)
        except LoginRefused as exc:
            annotate(request, outcome=f"refused:{exc.reason}")
            log.info("login refused (%s) for %r from %s", exc.reason, username.strip().lower()[:64], address)
            return _refused(auth, exc, form, nxt)
        user = result.user
        annotate(request, estate=_one_estate(user.estates))
        log.info("login: %s from %s", user.username, address)
        response: Response
        if form:
            response = RedirectResponse(safe_next(nxt), status.HTTP_303_SEE_OTHER)
        else:
            me = MeOut(username=user.username, display_name=user.display_name, role=user.role,
                       estates=list(user.estates), job=user.job, via="session", csrf=result.csrf)  # fmt: skip
            response = JSONResponse(me.model_dump())
        _set_cookies(auth, response, request, result.token, result.csrf)
        return response

    @router.post("/auth/logout", status_code=204, dependencies=[require(auth, "viewer", regulator=True)])
    async def logout(request: Request, user: Caller) -> Response:
        """End the cookie session (a bearer caller has none: nothing to end)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and user.kind == "session" and auth.accounts is not None:
            await auth.accounts.logout(cookie)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    @router.get("/auth/me", response_model=MeOut, dependencies=[require(auth, "viewer", regulator=True)])
    async def me(user: Caller) -> MeOut:
        return MeOut(
            username=user.account or user.name, display_name=user.display_name or user.name,
            role=user.role, job=user.job,
            estates=sorted(user.estates) if user.estates is not None else ["*"], via=user.kind,
            csrf=user.csrf or None,
        )  # fmt: skip

    # -- users ---------------------------------------------------------------------------------------


def _user_routes(router: APIRouter, auth: TokenAuth) -> None:
    Caller = Annotated[Principal, Depends(auth.dependency)]

    @router.get("/users", response_model=list[UserOut], dependencies=[require(auth, "admin")])
    async def list_users(user: Caller) -> list[UserOut]:
        users = await _accounts(auth).list_users()
        return [_user_out(u) for u in users if user.covers(auth.scope_of(u.estates))]

    @router.post("/users", response_model=UserOut, status_code=201, dependencies=[require(auth, "admin")])
    async def add_user(user: Caller, body: UserIn, request: Request) -> UserOut:
        estates = ["*"] if body.role == "regulator" else body.estates  # a regulator reads every estate
        _within(auth, user, estates)
        annotate(request, estate=_one_estate(estates), target=body.username.strip().lower())
        try:
            made = await _accounts(auth).add_user(body.username, body.role, estates, body.password,
                                                  body.display_name, body.job)  # fmt: skip
        except (AccountError, PasswordPolicyError) as exc:
            raise HTTPException(422, str(exc)) from None
        log.info("user %s added by %s (%s, %s)", made.username, user.name, made.role, ",".join(made.estates))
        return _user_out(made)

    @router.patch("/users/{username}", response_model=UserOut, dependencies=[require(auth, "admin")])
    async def update_user(username: str, user: Caller, body: UserPatch, request: Request) -> UserOut:
        target = await _managed(auth, user, username)
        annotate(request, estate=_one_estate(target.estates),
                 changed=sorted(k for k, v in body.model_dump().items() if v is not None))  # fmt: skip
        if body.estates is not None:
            _within(auth, user, body.estates)
        if body.role == "regulator":
            _within(auth, user, ["*"])
        if body.disabled and target.username == user.account:
            raise HTTPException(status.HTTP_409_CONFLICT, "you cannot disable yourself")
        try:
            updated = await _accounts(auth).update_user(
                target.username, role=body.role, estates=body.estates, disabled=body.disabled,
                password=body.password, display_name=body.display_name, job=body.job,
            )  # fmt: skip
        except (AccountError, PasswordPolicyError) as exc:
            raise HTTPException(422, str(exc)) from None
        return _user_out(updated)

    # -- API keys ------------------------------------------------------------------------------------


def _key_routes(router: APIRouter, auth: TokenAuth) -> None:
    Caller = Annotated[Principal, Depends(auth.dependency)]

    @router.post(
        "/auth/keys", response_model=KeyCreatedOut, status_code=201, dependencies=[require(auth, "admin")]
    )
    async def create_key(user: Caller, body: KeyIn, request: Request) -> KeyCreatedOut:
        owner = body.owner or user.account
        if owner is None:
            raise HTTPException(422, "owner: name the user the key acts for")
        owner_user = await _managed(auth, user, owner)
        if body.estates is not None:
            _within(auth, user, body.estates)
        now = _accounts(auth).clock.now()
        expires = now + body.expires_in_days * 86400 if body.expires_in_days else None
        try:
            key, secret = await _accounts(auth).create_key(
                body.name, owner_user.username, body.role, body.estates, expires, user.name
            )
        except AccountError as exc:
            raise _bad_request(exc) from None
        annotate(request, estate=_one_estate(key.estates), target=key.key_id)
        log.info("api key %s (%s) for %s created by %s", key.key_id, key.name, key.owner, user.name)
        return KeyCreatedOut(**_key_out(key).model_dump(), key=secret)

    @router.get("/auth/keys", response_model=list[KeyOut], dependencies=[require(auth, "viewer")])
    async def list_keys(user: Caller) -> list[KeyOut]:
        """Admins: every key within their estates. Others: their own keys."""
        keys = await _accounts(auth).list_keys()
        if user.at_least("admin"):
            return [_key_out(k) for k in keys if user.covers(auth.scope_of(k.estates))]
        return [_key_out(k) for k in keys if user.account is not None and k.owner == user.account]

    @router.delete("/auth/keys/{key_id}", status_code=204, dependencies=[require(auth, "admin")])
    async def revoke_key(key_id: str, user: Caller, request: Request) -> Response:
        key = await _accounts(auth).get_key(key_id)
        if key is None or not user.covers(auth.scope_of(key.estates)):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "key not found")
        annotate(request, estate=_one_estate(key.estates))
        await _accounts(auth).revoke_key(key_id)
        return Response(status_code=204)
