"""`python -m bench.auth_bench`: basic auth must not tell who exists, nor let wrong passwords hold a scrape.

Two ratios, both against a baseline taken in the same run:
- time of a wrong password for an unknown user / for a real user (should be ~1: same bcrypt work);
- latency of a valid (cached) scrape while 30 wrong passwords are being verified / when idle.
The hash uses bcrypt cost 12 (a common default; the issue measured 235 ms per check with it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import bcrypt
import httpx
from genesys_cloud_simulator import SimulatedGenesysCloud

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.config import Settings


async def _timed(http: httpx.AsyncClient, url: str, auth: tuple[str, str]) -> float:
    started = time.perf_counter()
    await http.get(url, auth=auth)
    return time.perf_counter() - started


async def run(rounds: int, flood: int, cost: int) -> dict[str, Any]:
    sim = SimulatedGenesysCloud()
    await sim.start()
    with tempfile.TemporaryDirectory() as tmp:
        hashed = bcrypt.hashpw(b"right-password", bcrypt.gensalt(rounds=cost)).decode()
        config = Path(tmp) / "web.yml"
        config.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n", encoding="utf-8")
        values: dict[str, Any] = {
            "api_base_url": sim.base_url,
            "login_base_url": sim.base_url,
            "client_id": sim.config.client_id,
            "client_secret": sim.config.client_secret,
            "web_listen_address": "127.0.0.1:0",
            "source": "analytics-websocket",
            "web_config_file": config,
        }
        exporter = Exporter(Settings(**values))
        await exporter.start()
        try:
            url = exporter.metrics_url
            async with httpx.AsyncClient(trust_env=False, timeout=120) as http:
                known = [await _timed(http, url, ("prometheus", f"wrong-{i}")) for i in range(rounds)]
                unknown = [await _timed(http, url, (f"nobody-{i}", "wrong")) for i in range(rounds)]
                await http.get(url, auth=("prometheus", "right-password"))  # cached from here on
                idle = [await _timed(http, url, ("prometheus", "right-password")) for _ in range(rounds)]
                wrong = [asyncio.create_task(http.get(url, auth=("prometheus", f"flood-{i}"))) for i in range(flood)]
                await asyncio.sleep(0.05)
                flooded = [await _timed(http, url, ("prometheus", "right-password")) for _ in range(rounds)]
                started = time.perf_counter()
                await asyncio.gather(*wrong)
                drained = time.perf_counter() - started
        finally:
            await exporter.stop()
            await sim.stop()
    return {
        "bcrypt_cost": cost,
        "known_user_wrong_password_ms": round(statistics.median(known) * 1000, 2),
        "unknown_user_ms": round(statistics.median(unknown) * 1000, 2),
        "unknown_over_known": round(statistics.median(unknown) / statistics.median(known), 3),
        "valid_scrape_idle_ms": round(statistics.median(idle) * 1000, 2),
        f"valid_scrape_during_{flood}_wrong_ms": round(statistics.median(flooded) * 1000, 2),
        "flooded_over_idle": round(statistics.median(flooded) / statistics.median(idle), 2),
        "wrong_passwords_still_pending_after_s": round(drained, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--flood", type=int, default=30)
    parser.add_argument("--cost", type=int, default=12)
    args = parser.parse_args(argv)
    for key, value in asyncio.run(run(args.rounds, args.flood, args.cost)).items():
        print(f"{key:40} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
