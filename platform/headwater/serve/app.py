"""The HTTP service: FastAPI routes over the champion holder and the prediction logger.

    GET  /health                      the process answers
    GET  /ready                       200 once a champion is loaded, else 503 and why
    GET  /v1/models                   every model spec and what serves it
    GET  /v1/models/{name}            version, alias, training window, metrics
    POST /v1/models/{name}/predict    {"rows": [{...}, ...]} or {"row": {...}} -> scores
    GET  /docs, /openapi.json         the OpenAPI documentation

The predict route reads the body itself (no pydantic model per row: the fields depend on the
model) and answers with a pre-serialised JSON response; its request schema is declared for the
OpenAPI docs.
"""

import json
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.background import BackgroundTask

from headwater.serve.champion import ChampionHolder, ModelSlot
from headwater.serve.shadow import PredictionLogger, Served, now_utc
from headwater.serve.validation import InvalidRequest, Problem, check_rows, request_rows

PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": 'One row ({"row": {...}}) or many ({"rows": [...]}); each row '
                "carries the model's keys and features (GET /v1/models/{name} lists them).",
                "properties": {
                    "row": {"type": "object"},
                    "rows": {"type": "array", "items": {"type": "object"}},
                },
            },
            "example": {"rows": [{"transaction_id": "t1", "amount": 12.5, "channel": "online"}]},
        }
    },
}


def _json(body: dict, status: int = 200, background=None):
    from starlette.responses import Response

    return Response(
        json.dumps(body), status_code=status, media_type="application/json", background=background
    )


def no_champion(slot: ModelSlot) -> dict:
    body = {
        "error": "no_champion",
        "model": slot.spec.name,
        "detail": f"no version of {slot.spec.registered_model_name} holds the `champion` alias "
        "yet (or it is still loading): train and promote one (headwater materialize), then "
        "retry; the service picks it up within its poll interval",
    }
    if slot.error:
        body["last_error"] = slot.error
    return body


def describe(slot: ModelSlot) -> dict:
    """What `GET /v1/models/{name}` answers for a served model."""
    model = slot.champion
    health = getattr(slot.source, "health", None)  # the online store's upkeep, if it has one
    return {
        **({"feature_source": health()} if health else {}),
        "model": slot.spec.name,
        "registered_model": slot.spec.registered_model_name,
        "alias": model.alias,
        "version": model.version,
        "challenger_version": slot.challenger.version if slot.challenger else None,
        "loaded_at": slot.loaded_at,
        "request_fields": {
            name: {k: v for k, v in vars(f).items() if v is not None}
            for name, f in model.request_fields.items()
        },
        **model.info,
    }


def create_app(holder: ChampionHolder, logger: PredictionLogger, max_rows: int):
    """The FastAPI application; the holder polls and the logger runs while it lives."""

    @asynccontextmanager
    async def lifespan(_app):
        holder.start()
        try:
            yield
        finally:
            holder.stop()
            logger.stop()

    app = FastAPI(title="headwater serve", lifespan=lifespan)
    slots = holder.slots

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        models = {
            name: ({"version": s.champion.version} if s.champion else no_champion(s))
            for name, s in slots.items()
        }
        if holder.polls and any(s.champion for s in slots.values()):
            return _json({"status": "ready", "models": models})
        return _json({"status": "not_ready", "models": models}, 503)

    @app.get("/v1/models")
    async def models():
        return {n: (describe(s) if s.champion else no_champion(s)) for n, s in slots.items()}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        slot = slots.get(name)
        if slot is None:
            return _unknown(name, slots)
        return _json(describe(slot)) if slot.champion else _json(no_champion(slot), 503)

    @app.post("/v1/models/{name}/predict", openapi_extra={"requestBody": PREDICT_BODY})
    async def predict(name: str, request: Request):
        started = time.perf_counter()
        slot = slots.get(name)
        if slot is None:
            return _unknown(name, slots)
        # one read of each: the whole request is checked, answered and shadowed by one version
        champion, challenger = slot.champion, slot.challenger
        if champion is None:
            return _json(no_champion(slot), 503)
        try:
            rows = request_rows(_parse(await request.body()), max_rows)
            check_rows(rows, champion.request_fields)
        except InvalidRequest as e:
            return _json(
                {"error": "invalid_input", "problems": [p.as_dict() for p in e.problems]}, 422
            )
        features, refused = _features(slot, rows)
        if refused is not None:
            return refused
        scores = champion.predict(features)
        request_id = uuid.uuid4().hex
        latency_ms = (time.perf_counter() - started) * 1000
        served = Served(
            slot, champion, challenger, request_id, now_utc(), rows, features, scores, latency_ms
        )
        body = {
            "model": name,
            "version": champion.version,
            "request_id": request_id,
            "predictions": [
                {**{k: row.get(k) for k in slot.spec.keys}, "score": score}
                for row, score in zip(rows, scores)
            ],
        }
        slot.source.record(rows)  # history from now on, for the next request (only queued)
        # logged once the answer is sent: nothing is logged that was not served
        return _json(body, background=BackgroundTask(_submit, logger, served))

    return app


def _features(slot, rows: list[dict]) -> tuple[list[dict] | None, object | None]:
    """The source's features of the rows, or the answer that refuses them."""
    try:
        return slot.source.features(rows), None
    except LookupError as e:  # the online store has no snapshot yet
        return None, _json({"error": "features_unavailable", "detail": str(e)}, 503)
    except ValueError as e:  # e.g. a request older than the online store's history
        return None, _json({"error": "invalid_input", "problems": [{"detail": str(e)}]}, 422)


async def _submit(logger: PredictionLogger, served: Served) -> None:
    # a coroutine: Starlette would run a plain function in its thread pool
    logger.submit(served)


def _parse(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError as e:
        raise InvalidRequest([Problem(f"the body is not JSON: {e}")]) from e


def _unknown(name: str, slots: dict) -> object:
    return _json(
        {"error": "unknown_model", "detail": f"no model spec {name!r}; known: {sorted(slots)}"},
        404,
    )
