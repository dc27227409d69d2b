"""The fake push service of bench/soak.py in its own process: the test suite's `FakePushService`
(VAPID checked, every push decrypted as a vendor would) plus two control routes for the driver.

    python bench/soak_push.py PORT

`POST /control/subscribe {"key"}` → a browser's PushSubscription JSON bound to that VAPID key;
`GET /control/pushes?since=N&limit=L` → `{"pushes": [[token, title, body, url, tag, wall], …], "refused": […],
"arrivals": n}` (up to L pushes accepted from the N-th on, decrypted; requests refused; requests received).
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def serve(port: int) -> None:
    sys.path.insert(0, str(ROOT))
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tests.notify.fakepush import FakePushService

    fake = FakePushService(url=f"http://{HOST}:{port}")

    async def subscribe(request: Request) -> Response:
        key = (await request.json())["key"]
        return Response(orjson.dumps(fake.subscribe(key)), media_type="application/json")

    async def pushes(request: Request) -> Response:
        start = int(request.query_params.get("since", "0"))
        limit = int(request.query_params.get("limit", "5000"))
        rows = [
            (p.token, p.title, p.body, str(p.payload.get("url", "")), str(p.payload.get("tag", "")), p.wall)
            for p in fake.pushes[start : start + limit]
        ]
        body = {"pushes": rows, "refused": fake.refused[:50], "arrivals": sum(fake.arrivals.values())}
        return Response(orjson.dumps(body), media_type="application/json")

    fake.app.router.routes.extend(
        [Route("/control/subscribe", subscribe, methods=["POST"]), Route("/control/pushes", pushes, methods=["GET"])]
    )
    uvicorn.run(fake.app, host=HOST, port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
