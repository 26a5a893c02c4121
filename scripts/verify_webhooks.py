"""Verifies webhooks with the reference libraries nobody here wrote: PyPI `standardwebhooks`
and `svix` (their `Webhook(secret).verify(body, headers)`).

Reads JSON from stdin: {"secret": "whsec_...", "body": "<raw body>", "headers": {...},
"late_seconds": 0} and prints {"standardwebhooks": "ok" | "refused: ...", "svix": ...}.
`late_seconds` verifies as a receiver whose clock is that much later would (a replayed or
delayed request): both libraries refuse a timestamp more than 5 minutes old.
Run by the signing tests with the interpreter of .venv-webhooks (scripts/test.sh makes it).
"""

import json
import sys
from datetime import datetime, timedelta

import standardwebhooks
import standardwebhooks.webhooks
import svix.webhooks


def main() -> None:
    request = json.load(sys.stdin)
    late = timedelta(seconds=request.get("late_seconds", 0))
    if late:
        class Later(datetime):
            @classmethod
            def now(cls, tz=None):
                return datetime.now(tz) + late

        standardwebhooks.webhooks.datetime = Later
    verdicts = {}
    for name, make in (
        ("standardwebhooks", standardwebhooks.Webhook),
        ("svix", svix.webhooks.Webhook),
    ):
        try:
            make(request["secret"]).verify(request["body"], request["headers"])
            verdicts[name] = "ok"
        except Exception as e:  # noqa: BLE001 - the verdict is the point
            verdicts[name] = f"refused: {type(e).__name__}: {e}"
    print(json.dumps(verdicts))


if __name__ == "__main__":
    main()
