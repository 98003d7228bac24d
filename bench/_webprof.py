import cProfile
import json
import pstats
import time
import uuid
from datetime import UTC, datetime

from bench.harness import Stack, chain, workspace_and_workflow

with Stack(workers=0) as stack:
    from django.conf import settings
    from django.test import Client
    from standardwebhooks.webhooks import Webhook

    from workflows.integrations.triggers import trigger_create

    settings.ALLOWED_HOSTS = ["*"]
    _, wf, _ = workspace_and_workflow(chain(1))
    t = trigger_create(workflow=wf, user=None, rate_limit_per_minute=10**6)
    signer = Webhook(t.secret)
    c = Client()

    def post(n):
        body = json.dumps({"topic": f"d{n}"})
        mid = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(tz=UTC)
        r = c.post(
            f"/hooks/{t.trigger.public_id}",
            data=body,
            content_type="application/json",
            headers={
                "webhook-id": mid,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(mid, now, body),
            },
        )
        assert r.status_code == 202, r.content

    for i in range(30):
        post(i)
    pr = cProfile.Profile(time.process_time)
    t0 = time.process_time()
    pr.enable()
    for i in range(300):
        post(i + 100)
    pr.disable()
    print("cpu ms per webhook:", (time.process_time() - t0) * 1000 / 300)
    pstats.Stats(pr).sort_stats("cumulative").print_stats(120)
