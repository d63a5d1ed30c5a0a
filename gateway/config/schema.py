"""The configuration schema. Every field says what it is; unknown keys are errors (extra="forbid")."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from gateway.config.cluster import ClusterConfig
from gateway.config.duty import DutyConfig
from gateway.config.escalation import EscalationConfig
from gateway.config.kpi import KpiConfig
from gateway.config.maintenance import MaintenanceConfig
from gateway.config.patrol import PatrolConfig
from gateway.config.tenancy import CommandPolicyConfig, CompanyConfig
from gateway.config.text import LocalizedText
from gateway.config.text import Strict as _Strict
from gateway.escalation.fallback_config import LocalFallbackConfig, local_output_problem
from gateway.evidence.config import CameraLinkConfig, EvidenceConfig
from gateway.model import Family, Priority

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be 1..65535")
    return value


def _hours(value: str) -> str:
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)", value)
    if not match:
        raise ValueError("must look like HH:MM-HH:MM, e.g. 06:00-23:00")
    return value


Port = Annotated[int, AfterValidator(_port)]
Role = Literal["viewer", "operator", "supervisor", "admin"]
Ident = Annotated[str, Field(pattern=_ID)]


class ModbusEndpointConfig(_Strict):
    host: str = Field(description="Modbus TCP host (a device or an RS-485-to-TCP converter)")
    port: Port = Field(502, description="TCP port")
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id behind the endpoint")
    timeout: float = Field(1.0, gt=0, le=30, description="Seconds to wait for one reply")
    retries: int = Field(0, ge=0, le=5, description="Immediate retries of a failed request in one poll")
    framer: Literal["socket", "rtu"] = Field(
        "socket",
        description="Framing on the TCP connection: 'socket' is Modbus TCP; 'rtu' is Modbus RTU frames "
        "over TCP, what an RS-485-to-TCP converter in transparent mode passes through",
    )


class MqttDeviceConfig(_Strict):
    topic: str = Field(
        description="Topic filter the device publishes under, e.g. estate/sunshine/access_gate/gate-n/#"
    )
    match: dict[str, str | int | bool] | None = Field(
        None,
        description="Payload fields (dotted path → value) that make a message this device's, where "
        "devices share a topic, e.g. {camera: gate_cam} on frigate/tracked_object_update",
    )
    vars: dict[str, str | int | bool] = Field(
        default_factory=dict, description="Values for the profile's command templates, e.g. {door: 2}"
    )


class HttpPushDeviceConfig(_Strict):
    """A camera that pushes its reads to the gateway's camera port (POST /anpr/{estate}/{device})."""

    token: str = Field(
        min_length=16,
        description="Shared secret the camera sends (Bearer, Basic password or ?token=); write ${ENV_VAR}",
    )
    allow_from: list[str] = Field(
        default_factory=list, description="Source IP addresses allowed to push; empty: any (token only)"
    )


class DeviceConfig(_Strict):
    id: Ident = Field(description="Unique within the estate")
    family: Family = Field(description="Device family")
    profile: str = Field(description="Vendor profile name (drivers/profiles/<name>.yaml)")
    name: LocalizedText | None = Field(None, description="Display name")
    location: str = Field("", description="Where it is, e.g. '3号楼 地下室 配电房'")
    zone: str = Field("", description="Zone or building used to correlate alarms")
    poll_interval: float = Field(1.0, gt=0, le=3600, description="Seconds between Modbus polls")
    offline_after: int = Field(
        2, ge=1, le=100, description="Failed polls before offline: 2 keeps detection within 3 intervals"
    )
    heartbeat_timeout: float | None = Field(
        None, gt=0, description="Seconds of silence (MQTT) after which the device is offline"
    )
    commands: dict[str, Role | CommandPolicyConfig] = Field(
        default_factory=dict,
        description="Commands this device accepts, each with the least role allowed (start: supervisor), "
        "or {role, confirm_by, within, when} for a two-person rule (gateway/config/tenancy.py)",
    )
    modbus: ModbusEndpointConfig | None = Field(None, description="Modbus transport")
    mqtt: MqttDeviceConfig | None = Field(None, description="MQTT transport")
    http_push: HttpPushDeviceConfig | None = Field(None, description="HTTP push transport (ANPR cameras)")
    lane_direction: Literal["in", "out"] | None = Field(
        None, description="ANPR camera on a one-way lane: every vehicle it reads goes this way"
    )
    barrier: str | None = Field(
        None, description="ANPR camera: id of the barrier relay (same estate) its 'open' decisions pulse"
    )
    cameras: list[CameraLinkConfig] = Field(
        default_factory=list,
        description="Recordings of this device's alarms: NVR playback / Frigate clip URL templates "
        "(gateway/evidence/config.py), shown as links on its incidents",
    )

    @model_validator(mode="after")
    def _one_transport(self) -> DeviceConfig:
        given = [t for t in ("modbus", "mqtt", "http_push") if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one transport: 'modbus', 'mqtt' or 'http_push'")
        if (self.lane_direction or self.barrier) and self.family is not Family.PLATE_BARRIER:
            raise ValueError("'lane_direction' and 'barrier' are for plate_barrier cameras")
        return self


class VehicleConfig(_Strict):
    plate: str = Field(min_length=2, max_length=16, description="Plate as written, e.g. 粤B12345")
    label: str = Field("", description="Who: unit and name, visitor's host, or the reason for a ban")
    valid_from: datetime | None = Field(None, description="Pass valid from (local time of the estate)")
    valid_until: datetime | None = Field(None, description="Pass valid until (local time of the estate)")


class VehiclesConfig(_Strict):
    """The estate's vehicle registry: it decides every plate read (visitors may also be added by API)."""

    residents: list[VehicleConfig] = Field(default_factory=list, description="Residents' registered plates")
    visitors: list[VehicleConfig] = Field(
        default_factory=list, description="Visitor passes, each with valid_from / valid_until"
    )
    blacklist: list[VehicleConfig] = Field(default_factory=list, description="Plates never let through")
    unknown_entry: Literal["hold", "open"] = Field(
        "hold", description="Unregistered vehicle entering: hold for the guard, or open (it cannot leave)"
    )

    @model_validator(mode="after")
    def _visitor_windows(self) -> VehiclesConfig:
        for visitor in self.visitors:
            if visitor.valid_until is None:
                raise ValueError(f"visitor pass {visitor.plate}: needs valid_until")
            if visitor.valid_from is not None and visitor.valid_from >= visitor.valid_until:
                raise ValueError(f"visitor pass {visitor.plate}: valid_from must be before valid_until")
        return self


class EstateConfig(_Strict):
    id: Ident = Field(description="Estate id used in topics, tags and URLs")
    name: LocalizedText = Field(description="Estate name in Chinese and English")
    timezone: str = Field("Asia/Shanghai", description="IANA timezone for schedules and reports")
    gate_hours: Annotated[str, AfterValidator(_hours)] = Field(
        "06:00-23:00", description="Pedestrian-gate opening hours"
    )
    holidays: list[date] = Field(
        default_factory=list, description="Dates with holiday gate hours (e.g. 春节)"
    )
    holiday_gate_hours: Annotated[str, AfterValidator(_hours)] | None = Field(
        None, description="Gate hours on holidays; unset: closed all day (every entry is after-hours)"
    )
    devices: list[DeviceConfig] = Field(default_factory=list, description="Devices of this estate")
    vehicles: VehiclesConfig = Field(default_factory=VehiclesConfig, description="Vehicle registry")
    duty: DutyConfig | None = Field(None, description="Duty roster: shifts, who is on duty in each role")
    local_fallback: LocalFallbackConfig | None = Field(
        None, description="Uplink down for `after` s: alarms of `priorities` pulse these local outputs"
    )
    patrol: PatrolConfig | None = Field(None, description="Guard tours: routes, checkpoints, schedules")
    maintenance: MaintenanceConfig | None = Field(
        None, description="Maintenance duties (维保): intervals, reminders, overdue alarms"
    )

    @model_validator(mode="after")
    def _unique_devices(self) -> EstateConfig:
        seen: set[str] = set()
        for device in self.devices:
            if device.id in seen:
                raise ValueError(f"device id {device.id!r} appears twice")
            seen.add(device.id)
        for device in self.devices:
            if device.barrier is not None and device.barrier not in seen:
                raise ValueError(f"device {device.id!r}: barrier {device.barrier!r} is not in this estate")
        return self

    @model_validator(mode="after")
    def _patrol_and_maintenance_devices(self) -> EstateConfig:
        families = {d.id: d.family for d in self.devices}
        for name in sorted(self.patrol.devices() if self.patrol else ()):
            if name not in families:
                raise ValueError(f"patrol: checkpoint device {name!r} is not in this estate")
        for duty in self.maintenance.duties if self.maintenance else ():
            if duty.device is not None and duty.device not in families:
                raise ValueError(f"maintenance duty {duty.id}: device {duty.device!r} is not in this estate")
            if duty.kind.startswith("generator_") and families.get(duty.device or "") != Family.GENERATOR:
                raise ValueError(f"maintenance duty {duty.id}: {duty.device!r} is not a generator")
        return self


Op = Literal["<", "<=", ">", ">=", "==", "!="]


class ConditionConfig(_Strict):
    """A guard on another point of the same device (e.g. only while the engine is running)."""

    point: str = Field(description="Point name of the same device")
    is_in: list[str | float | int | bool] | None = Field(None, alias="in", description="Allowed values")
    not_in: list[str | float | int | bool] | None = Field(None, description="Forbidden values")


class TermConfig(_Strict):
    """One part of a composite rule: which points of which devices, and what makes it true."""

    family: Family | None = Field(None, description="Any device of this family in the estate (or zone)")
    device: str | None = Field(None, description="This device only")
    point: str = Field(description="Point name; a glob like '*.fire' matches many")
    values: list[str | float | int | bool] | None = Field(
        None, description="True while the value is one of these"
    )
    op: Op | None = Field(None, description="Or a comparison with `limit`")
    limit: float | None = Field(None, description="Limit for `op`")

    @model_validator(mode="after")
    def _one_test(self) -> TermConfig:
        if (self.values is None) == (self.op is None or self.limit is None):
            raise ValueError("a term needs 'values', or 'op' and 'limit'")
        if self.family is None and self.device is None:
            raise ValueError("a term needs 'family' or 'device'")
        return self


class RuleConfig(_Strict):
    """A rule on one family or one device. Kinds: threshold, state, event, count, rate, offline, and
    composite (terms over several devices of one estate or zone)."""

    id: Ident = Field(description="Rule id; the same id in the site file replaces a shipped default")
    kind: Literal["threshold", "state", "event", "count", "rate", "offline", "composite"] = Field(
        description="Rule kind"
    )
    family: Family | None = Field(None, description="Applies to every device of this family")
    device: str | None = Field(None, description="Applies to this device only (estate/device or device)")
    point: str | None = Field(None, description="Point watched (threshold, state)")
    op: Op | None = Field(None, description="Comparison (threshold)")
    limit: float | None = Field(None, description="Limit (threshold); units per minute (rate)")
    deadband: float = Field(0.0, ge=0, description="Hysteresis before the alarm clears (threshold)")
    values: list[str | float | int | bool] | None = Field(None, description="Alarm values (state)")
    events: list[str] | None = Field(None, description="Event kinds that raise it (event)")
    match: dict[str, list[str | float | int | bool]] | None = Field(
        None, description="Event attributes that must have one of these values, e.g. {direction: [out]}"
    )
    clear_after: float = Field(0.0, ge=0, description="Event alarms return to normal after s (0: at once)")
    count: int | None = Field(None, ge=2, description="Events within `window` that raise it (count)")
    window: float | None = Field(None, gt=0, le=86400, description="Sliding window in seconds (count, rate)")
    group_by: str | None = Field(None, description="Count per value of this event attribute (e.g. reader)")
    schedule: Literal["always", "outside_gate_hours", "inside_gate_hours"] = Field(
        "always", description="Only alarm at these times (the estate's gate hours, in its timezone)"
    )
    latch: bool = Field(False, description="Stay active after the condition clears until acknowledged")
    first_out: bool = Field(
        False, description="Part of a fire sequence: the first one is kept as first-out (首警)"
    )
    chatter_count: int = Field(
        0, ge=0, description="Activations within chatter_window that flag the alarm as chattering (0: off)"
    )
    chatter_window: float = Field(600.0, gt=0, description="Seconds for chattering detection")
    suppress_when: ConditionConfig | None = Field(
        None, description="Suppressed by design while this holds (e.g. generator in a planned test run)"
    )
    terms: list[TermConfig] | None = Field(None, description="Composite: every term must hold")
    at_least: int = Field(1, ge=1, description="Composite with one term: distinct points that must hold")
    within: float | None = Field(None, gt=0, description="Composite: those points became true within s")
    same_zone: bool = Field(False, description="Composite: evaluated per zone (devices' `zone`)")
    on_delay: float = Field(0.0, ge=0, description="Seconds the condition must hold before alarming")
    off_delay: float = Field(0.0, ge=0, description="Seconds the condition must be gone before clearing")
    when: ConditionConfig | None = Field(None, description="Only evaluate while this holds")
    priority: Priority = Field(description="Alarm priority")
    message: LocalizedText = Field(description="Alarm text; {device}, {value}, {location} are filled")
    enabled: bool = Field(True, description="False switches a shipped default off")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> RuleConfig:
        if self.kind == "composite":
            if not self.terms:
                raise ValueError("a composite rule needs 'terms'")
            if self.at_least > 1 and len(self.terms) != 1:
                raise ValueError("'at_least' counts points of a single term")
            return self
        if self.kind not in {"event", "count", "offline"} and not self.point:
            raise ValueError(f"a {self.kind} rule needs 'point'")
        if self.kind in {"threshold", "rate"} and (self.op is None or self.limit is None):
            raise ValueError(f"a {self.kind} rule needs 'op' and 'limit'")
        if self.kind == "count" and (not self.events or self.count is None or self.window is None):
            raise ValueError("a count rule needs 'events', 'count' and 'window'")
        if self.kind == "rate" and (self.window is None or self.op not in {">", "<"}):
            raise ValueError("a rate rule needs 'window' and op '>' (rising) or '<' (falling)")
        if self.kind == "state" and not self.values:
            raise ValueError("a state rule needs 'values'")
        if self.kind == "event" and not self.events:
            raise ValueError("an event rule needs 'events'")
        if self.family is None and self.device is None:
            raise ValueError("a rule needs 'family' or 'device'")
        return self


LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class MqttBrokerConfig(_Strict):
    host: str = Field("127.0.0.1", description="Broker host")
    port: Port = Field(1883, description="Broker port")
    username: str | None = Field(None, description="User name")
    password: str | None = Field(None, description="Password; write ${ENV_VAR} to keep it out of the file")
    client_id: str = Field("estate-gateway", description="Fixed id: the broker keeps our session by it")
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT 5 (flow control, session expiry) or 3.1.1 for brokers that lack 5"
    )
    keepalive: int = Field(30, ge=5, le=3600, description="Keepalive seconds")
    session_expiry: int = Field(
        86400,
        ge=0,
        le=4294967295,
        description="Seconds the broker keeps our session (and QoS 1) while we are away",
    )
    max_backlog: int = Field(
        2000, ge=10, description="Messages read but not yet taken by the core; above it reading pauses"
    )
    receive_maximum: int = Field(
        1000, ge=1, le=65535, description="Unacked QoS 1 messages the broker may send us at once (MQTT 5)"
    )
    publish_incidents: bool = Field(
        True,
        description="Incident snapshots to estate-gateway/{estate}/incident/{id} (QoS 1, retained while "
        "unresolved, cleared at resolve), on a connection of its own",
    )
    kpi_interval: float = Field(
        60.0,
        ge=0,
        description="Seconds between KPI messages to estate-gateway/{estate}/kpi/{name} (QoS 1, retained, "
        "only what changed; with publish_incidents, on its connection); 0: off",
    )
    dead_letter_topic: str | None = Field(
        None,
        description="Rejected payloads are republished here (QoS 0, rate-limited, truncated), e.g. "
        "estate-gateway/{gateway}/dead-letter; {gateway} is the gateway_id; unset: off",
    )
    dead_letter_rate: int = Field(10, ge=1, le=10000, description="Dead letters published per second at most")
    tls: bool = Field(False, description="Connect over TLS (port 8883 by convention)")
    ca_file: str | None = Field(None, description="CA that signed the broker's certificate; unset: system's")
    cert_file: str | None = Field(None, description="Client certificate (PEM) where the broker asks for one")
    key_file: str | None = Field(None, description="Private key of cert_file (PEM)")
    tls_insecure: bool = Field(
        False, description="Skip the host-name check (the chain is still verified); test rigs only"
    )
    allow_plaintext: bool = Field(
        False, description="Allow a non-TLS connection to a broker that is not on this host"
    )

    @model_validator(mode="after")
    def _tls_off_localhost(self) -> MqttBrokerConfig:
        # Credentials and device traffic must not cross a network in clear text by accident.
        if not self.tls and not self.allow_plaintext and self.host not in LOCAL_HOSTS:
            raise ValueError(
                f"broker {self.host!r} is not on this host: set 'tls: true' (with ca_file), or "
                "'allow_plaintext: true' to send credentials and device traffic unencrypted"
            )
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("'key_file' needs 'cert_file'")
        return self


class IngestConfig(_Strict):
    queue_size: int = Field(
        10_000, ge=10, description="Deliveries waiting for the alert core; drivers wait when it is full"
    )


class IncidentsConfig(_Strict):
    correlation_window: float = Field(
        120.0, ge=0, description="New alarms in the same estate and zone within s join one incident (0: off)"
    )
    flood_count: int = Field(10, ge=1, description="More new incidents than this per estate ... (ISA-18.2)")
    flood_window: float = Field(600.0, gt=0, description="... within this many seconds is a flood")


class StoreConfig(_Strict):
    engine: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="sqlite: one file, one instance; postgres: several instances share one database"
    )
    path: str = Field("var/estate-gateway.db", description="SQLite file; relative to the working dir")
    dsn: str = Field(
        "",
        repr=False,  # holds a password: never in a log line or a traceback
        description='PostgreSQL DSN (postgresql://user:pw@host/db); write "${PG_DSN}", it has a password',
    )
    pool_min: int = Field(1, ge=1, description="PostgreSQL connections kept open")
    pool_max: int = Field(10, ge=1, description="PostgreSQL connections at most")

    @model_validator(mode="after")
    def _postgres_needs_a_dsn(self) -> StoreConfig:
        if self.engine == "postgres" and not self.dsn:
            raise ValueError("store.engine postgres needs store.dsn")
        if self.pool_min > self.pool_max:
            raise ValueError("store.pool_min is above store.pool_max")
        return self


class ApiTokenConfig(_Strict):
    """A bearer token for a machine client or a console user (full user accounts arrive with issue 7)."""

    name: str = Field(description="Who holds it; recorded in the audit trail")
    token: str = Field(min_length=16, description="The secret; write ${ENV_VAR}, never the value")
    role: Role = Field("viewer", description="viewer reads; operator and above may acknowledge")
    estates: list[str] = Field(default_factory=lambda: ["*"], description="Estate ids it may see; * = all")


class ApiAuthConfig(_Strict):
    """User sessions, lock-out and cookies (users live in the store: `estate-gateway user add`)."""

    session_idle_minutes: float = Field(30, gt=0, le=1440, description="A session ends after this idle time")
    session_max_hours: float = Field(12, gt=0, le=720, description="Absolute lifetime of a login session")
    lockout_failures: int = Field(5, ge=1, description="Failed logins per username in the window → locked")
    lockout_window_minutes: float = Field(15, gt=0, description="Window in which failures are counted")
    lockout_minutes: float = Field(15, gt=0, description="How long a username (or address) stays locked")
    address_failures: int = Field(20, ge=1, description="Failed logins per source address → throttled")
    cookie_secure: bool = Field(False, description="Secure cookies even over http (TLS ends at a proxy)")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Peer addresses whose X-Forwarded-For is believed (exact IPs)"
    )
    login_page: str = Field("/console/login", pattern=r"^/", description="Where a failed form login returns")


class ApiConfig(_Strict):
    host: str = Field("127.0.0.1", description="Bind address")
    port: int = Field(8080, ge=0, le=65535, description="Port; 0 picks a free one")
    enabled: bool = Field(True, description="Serve the HTTP API")
    tokens: list[ApiTokenConfig] = Field(default_factory=list, description="Bearer tokens allowed in")
    auth: ApiAuthConfig = Field(default_factory=ApiAuthConfig, description="User sessions and lock-out")


class HttpPushConfig(_Strict):
    host: str = Field("0.0.0.0", description="Bind address of the camera port (cameras' network)")
    port: int = Field(8088, ge=0, le=65535, description="Camera port; 0 picks a free one")
    commit_wait: float = Field(
        1.5, gt=0, le=10, description="Seconds a camera's reply may wait for the core's commit"
    )


class InfluxConfig(_Strict):
    """The metrics sink (gateway/sinks): InfluxDB 2.x/3.x or VictoriaMetrics through /api/v2/write."""

    enabled: bool = Field(False, description="Write readings, events, alarms, incidents, KPIs and health")
    url: str = Field("http://127.0.0.1:8086", description="Server URL (InfluxDB, or VictoriaMetrics :8428)")
    org: str = Field("estate", description="InfluxDB organisation (ignored by VictoriaMetrics)")
    bucket: str = Field("estate", description="Bucket (InfluxDB 3: the database)")
    token: str | None = Field(
        None, repr=False, description="API token; write ${INFLUX_TOKEN}, never the value (never logged)"
    )
    batch_size: int = Field(5000, ge=1, le=100_000, description="Points per write request")
    flush_interval: float = Field(1.0, gt=0, le=60, description="Seconds a point may wait for its batch")
    timeout: float = Field(10.0, gt=0, le=120, description="Seconds one write may take before it is retried")
    queue_points: int = Field(
        100_000, ge=100, description="Points held in memory; beyond, they go to the spool (never dropped)"
    )
    spool_dir: str = Field(
        "var/influx-spool", description="Folder of the on-disk buffer; relative to the working dir"
    )
    spool_max_bytes: int = Field(
        256 * 1024 * 1024, ge=64 * 1024, description="Bound of the on-disk buffer in bytes"
    )
    overflow: Literal["drop_oldest", "drop_newest"] = Field(
        "drop_oldest", description="When the spool is full: evict the oldest points, or refuse the newest"
    )
    fsync_interval: float = Field(1.0, gt=0, le=60, description="Seconds between fsyncs of the spool")
    retry_max: float = Field(30.0, gt=0, le=600, description="Longest pause between retries while down")
    snapshot_interval: float = Field(30.0, gt=0, description="Seconds between health/open-incident snapshots")
    kpi_interval: float = Field(60.0, gt=0, description="Seconds between KPI polls")
    gzip: bool = Field(True, description="Compress write requests")


class GatewayConfig(_Strict):
    gateway_id: Ident = Field("gw-1", description="This instance's id (status topic, logs)")
    mqtt: MqttBrokerConfig = Field(default_factory=MqttBrokerConfig, description="Broker for device traffic")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Incident store")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Queue from drivers to the core")
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig, description="Correlation and flood")
    api: ApiConfig = Field(default_factory=ApiConfig, description="HTTP API")
    http_push: HttpPushConfig = Field(
        default_factory=HttpPushConfig, description="Port where ANPR cameras push (opened if any camera does)"
    )
    escalation: EscalationConfig = Field(
        default_factory=EscalationConfig, description="Escalation policies, ack links (gateway/escalation)"
    )
    kpi: KpiConfig = Field(default_factory=KpiConfig, description="KPI SLAs and targets (gateway/kpi)")
    influx: InfluxConfig = Field(default_factory=InfluxConfig, description="Metrics sink (gateway/sinks)")
    evidence: EvidenceConfig = Field(
        default_factory=EvidenceConfig, description="Plate pictures on disk, retention (gateway/evidence)"
    )
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig, description="Several instances sharing the estates (gateway/cluster)"
    )
    profile_dirs: list[str] = Field(default_factory=list, description="Extra folders of user profiles")
    estates: list[EstateConfig] = Field(description="Estates this gateway serves")
    companies: list[CompanyConfig] = Field(
        default_factory=list, description="Property companies above the estates (users: company:<id>)"
    )
    rules: list[RuleConfig] = Field(default_factory=list, description="Site rules, added to the defaults")

    @model_validator(mode="after")
    def _unique_estates(self) -> GatewayConfig:
        ids = [estate.id for estate in self.estates]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"estate ids appear twice: {sorted(dupes)}")
        if self.cluster.enabled and self.store.engine != "postgres":
            raise ValueError("cluster.enabled needs store.engine: postgres (the instances share its leases)")
        return self

    @model_validator(mode="after")
    def _local_outputs_exist(self) -> GatewayConfig:
        problem = local_output_problem(self.estates, self.escalation.channels)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _companies_own_configured_estates(self) -> GatewayConfig:
        ids = {estate.id for estate in self.estates}
        owner: dict[str, str] = {}
        for company in self.companies:
            for estate in company.estates:
                if estate not in ids:
                    raise ValueError(f"company {company.id}: estate {estate!r} is not configured")
                if owner.setdefault(estate, company.id) != company.id:
                    raise ValueError(f"estate {estate!r} belongs to two companies")
        return self
