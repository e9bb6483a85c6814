"""A Sluice metric provider written in Python: one field of a JSON document served over HTTP.

Plugin config (`metric.provider.plugin.<name>` in an AnalysisTemplate):

    url:             the document to fetch with GET (http or https); the origin must be granted
    field:           dotted path into the document, e.g. `data.items.0.rate` (default: all of it)
    samples:         how many samples make one measurement (default 1); with more than one the
                     field must be a number and the measurement's value is their mean
    intervalSeconds: seconds between samples (default 10); the host resumes the measurement

A measurement of several samples is `running` between samples; the samples taken so far travel
in its metadata, so every call (run, resume, terminate) can run in a fresh instance.
"""

import json
import re
import time
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import log, outgoing_handler, poll
from wit_world.imports.sluice_plugin_types import (
    AnalysisContext,
    AnalysisPhase,
    Measurement,
    PluginError_AccessDenied,
    PluginError_InvalidConfig,
)
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.wasi_http_types import (
    ErrorCode,
    ErrorCode_HttpRequestDenied,
    Fields,
    IncomingResponse,
    Method_Get,
    OutgoingRequest,
    RequestOptions,
    Scheme_Http,
    Scheme_Https,
)

PLUGIN_TYPE = "json-field"
SAMPLES_KEY = "samples"
DEFAULT_INTERVAL_SECONDS = 10
REQUEST_TIMEOUT_NANOS = 5_000_000_000
READ_CHUNK = 64 * 1024


class Config:
    """The validated plugin config."""

    def __init__(self, raw: str):
        try:
            doc = json.loads(raw or "{}")
        except ValueError as e:
            raise invalid(f"plugin config is not JSON: {e}")
        if not isinstance(doc, dict):
            raise invalid("plugin config must be an object")
        self.url = doc.get("url")
        if not isinstance(self.url, str) or not self.url:
            raise invalid("url is required")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise invalid(f"url must be an absolute http or https URL, got {self.url!r}")
        self.scheme = Scheme_Https() if parts.scheme == "https" else Scheme_Http()
        self.authority = parts.netloc
        self.path_with_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.field = doc.get("field", "")
        if not isinstance(self.field, str):
            raise invalid("field must be a string")
        self.samples = positive_int(doc, "samples", 1, minimum=1)
        self.interval = positive_int(doc, "intervalSeconds", DEFAULT_INTERVAL_SECONDS, minimum=0)


def positive_int(doc: dict, key: str, default: int, minimum: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise invalid(f"{key} must be an integer of at least {minimum}, got {value!r}")
    return value


def invalid(message: str) -> Err:
    return Err(PluginError_InvalidConfig(message))


class SampleError(Exception):
    """The sample could not be taken; the measurement becomes an `error` measurement."""


def error_name(code: ErrorCode) -> str:
    """`ErrorCode_ConnectionRefused(value=None)` -> `connection refused`."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()
    value = getattr(code, "value", None)
    return f"{words} ({value})" if value is not None else words


def fetch(config: Config) -> bytes:
    """GETs the document; a refused origin is the plugin error `access-denied`."""
    request = OutgoingRequest(Fields.from_list([("accept", b"application/json")]))
    request.set_method(Method_Get())
    request.set_scheme(config.scheme)
    request.set_authority(config.authority)
    request.set_path_with_query(config.path_with_query)
    options = RequestOptions()
    options.set_connect_timeout(REQUEST_TIMEOUT_NANOS)
    options.set_first_byte_timeout(REQUEST_TIMEOUT_NANOS)
    try:
        future = outgoing_handler.handle(request, options)
        with future:
            response = future.get()
            while response is None:
                with future.subscribe() as ready:
                    ready.block()
                response = future.get()
        if isinstance(response, Err):
            raise SampleError(f"GET {config.url}: the response was already taken")
        outcome = response.value
        if isinstance(outcome, Err):
            raise outcome
        return read_body(config, outcome.value)
    except Err as e:
        if isinstance(e.value, ErrorCode_HttpRequestDenied):
            raise Err(PluginError_AccessDenied(f"GET {config.url}: origin not granted"))
        raise SampleError(f"GET {config.url} failed: {error_name(e.value)}")


def read_body(config: Config, response: IncomingResponse) -> bytes:
    with response:
        status = response.status()
        body = response.consume()
        chunks = []
        with body.stream() as stream:
            while True:
                try:
                    chunks.append(stream.blocking_read(READ_CHUNK))
                except Err as e:
                    if isinstance(e.value, StreamError_Closed):
                        break
                    raise SampleError(f"GET {config.url}: reading the body failed")
        body.__exit__(None, None, None)
    if not 200 <= status < 300:
        raise SampleError(f"received non 2xx response code: {status}")
    return b"".join(chunks)


def select(document, field: str):
    """Follows a dotted path; numeric segments index lists."""
    current = document
    for segment in field.split(".") if field else []:
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            raise SampleError(f"field {field} not found (no {segment!r})")
    return current


def sample(config: Config):
    """Takes one sample: the selected field of the fetched JSON document."""
    body = fetch(config)
    try:
        document = json.loads(body)
    except ValueError as e:
        raise SampleError(f"GET {config.url}: the body is not JSON: {e}")
    value = select(document, config.field)
    if config.samples > 1 and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SampleError(f"field {config.field} is {json.dumps(value)}, not a number")
    log.emit(log.Level.DEBUG, "sampled", [("url", config.url), ("value", json.dumps(value))])
    return value


def render(value) -> str:
    """How Argo stores values: strings as they are, numbers without a trailing `.0`, JSON else."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, separators=(",", ":"))


def mean(samples: list) -> str:
    return render(sum(samples) / len(samples))


def now() -> int:
    return int(time.time())


def measure(config: Config, taken: list, started_at: int) -> Measurement:
    """Takes the next sample and returns the measurement: running until all samples are in."""
    try:
        taken = taken + [sample(config)]
    except SampleError as e:
        return finished(AnalysisPhase.ERROR, None, str(e), started_at, taken)
    if len(taken) < config.samples:
        return Measurement(
            phase=AnalysisPhase.RUNNING,
            value=None,
            message=f"{len(taken)} of {config.samples} samples",
            started_at=started_at,
            finished_at=None,
            resume_at=now() + config.interval,
            metadata=[(SAMPLES_KEY, json.dumps(taken))],
        )
    value = render(taken[0]) if config.samples == 1 else mean(taken)
    return finished(AnalysisPhase.SUCCESSFUL, value, None, started_at, taken)


def finished(phase, value, message, started_at, taken) -> Measurement:
    return Measurement(
        phase=phase,
        value=value,
        message=message,
        started_at=started_at,
        finished_at=now(),
        resume_at=None,
        metadata=[(SAMPLES_KEY, json.dumps(taken))] if taken else [],
    )


def samples_of(current: Measurement) -> list:
    """The samples a running measurement carries in its metadata."""
    for key, value in current.metadata:
        if key == SAMPLES_KEY:
            try:
                taken = json.loads(value)
            except ValueError:
                break
            if isinstance(taken, list):
                return taken
    raise Err(PluginError_InvalidConfig(f"measurement metadata has no valid {SAMPLES_KEY!r}"))


class MetricProvider(exports.MetricProvider):
    def plugin_type(self) -> str:
        return PLUGIN_TYPE

    def init(self) -> None:
        # Nothing static to validate: every setting comes with the metric.
        return None

    def run(self, ctx: AnalysisContext) -> Measurement:
        config = Config(ctx.plugin_config)
        log.emit(log.Level.INFO, "measuring", [("metric", ctx.metric_name), ("url", config.url)])
        return measure(config, [], now())

    def resume(self, ctx: AnalysisContext, current: Measurement) -> Measurement:
        if current.finished_at is not None:
            return current
        config = Config(ctx.plugin_config)
        return measure(config, samples_of(current), current.started_at or now())

    def terminate(self, ctx: AnalysisContext, current: Measurement) -> Measurement:
        if current.finished_at is not None:
            return current
        config = Config(ctx.plugin_config)
        taken = samples_of(current)
        message = f"terminated after {len(taken)} of {config.samples} samples"
        value = mean(taken) if taken else None
        started = current.started_at or now()
        return finished(AnalysisPhase.SUCCESSFUL, value, message, started, taken)

    def garbage_collect(self, ctx: AnalysisContext, limit: int) -> None:
        # Measurements keep their state in their own metadata: nothing outside to delete.
        return None

    def get_metadata(self, ctx: AnalysisContext) -> list:
        try:
            config = Config(ctx.plugin_config)
        except Err:
            return []
        metadata = [("url", config.url)]
        if config.field:
            metadata.append(("field", config.field))
        if config.samples > 1:
            metadata.append(("samples", str(config.samples)))
        return metadata
