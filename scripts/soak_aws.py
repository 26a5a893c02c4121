#!/usr/bin/env python3
"""The AWS soak (scripts/soak-aws.sh runs it, with moto started; not part of scripts/test.sh).

Each Lambda function runs as its own processes (the `soak_worker` example of the tests crate):
trigger-intake and stats-query behind an API Gateway played on 127.0.0.1, scenario-advance and
webhook-deliver behind their SQS event source mappings (short visibility timeouts, so killed
work comes back soon). `--events` events are sent in batches of `--batch` to a random
trigger-intake process; a batch not answered 200 with an intake answer for each of its events
is sent again (each event is idempotent by its id). The webhook goes to the receiver of
scripts/soak.py on 127.0.0.1 (500 to `--fail` of the requests, hanging `--hang-seconds` on
`--hang` of them). Every `--kill-every` seconds a random function process is killed (SIGKILL)
and started again at once. Statistics are read from stats-query about once a second. Then the
deliveries settle (no more kills) until none is pending, or `--settle` seconds pass.

Checks (the exit status is 1 when one fails):
- every event was answered; every enrolled contact has exactly one delivery of the webhook step
  (read from the table on moto: the enrollment and delivery-state items);
- `accepted + pending + failed == passes` in every statistics sample;
- no envelope id accepted twice by the receiver, except when the webhook-deliver invocation
  that held its delivery was cut short (its process killed, or the invocation dropped at its
  timeout) between the two answers (counted, reported);
- the receiver's distinct accepted ids match the `accepted` statistic.
"""

import argparse
import collections
import http.client
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import KEY, Receiver, free_port  # noqa: E402


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--kill-every", type=float, default=3.0)
    p.add_argument("--fail", type=float, default=0.10)
    p.add_argument("--hang", type=float, default=0.01)
    p.add_argument("--hang-seconds", type=float, default=20.0)
    p.add_argument("--settle", type=float, default=900.0)
    p.add_argument("--workers", default="intake=2,advance=2,deliver=4,stats=1",
                   help="processes per function")
    p.add_argument("--retry-window", default="600s")
    p.add_argument("--retry-delays", default="2s,5s,10s,20s")
    p.add_argument("--visibility", type=int, default=15,
                   help="scenario-advance's visibility timeout, s (its function timeout: --timeout)")
    p.add_argument("--timeout", type=int, default=10)
    p.add_argument("--deliver-visibility", type=int, default=30,
                   help="webhook-deliver's visibility timeout, s (above its function timeout: a "
                        "batch's attempts take up to 15 s each)")
    p.add_argument("--deliver-timeout", type=int, default=25)
    p.add_argument("--stop-after", type=float, default=None,
                   help="stop sending new batches after this many seconds (a shorter run)")
    p.add_argument("--worker", default="target/debug/examples/soak_worker")
    p.add_argument("--workdir", default=None)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args()


DELIVERY = {}  # envelope id -> delivery id, as webhook-deliver invocations name them


class Worker:
    """One function process. `on_cut(time, name, how, envelopes)` is told of each invocation cut
    short — the process killed, or the invocation dropped at its timeout — with the envelope ids
    of the deliveries it held (those a consumer printed in `batch …` with no `end` after)."""

    def __init__(self, kind, n, argv, env, logdir, on_cut):
        self.kind, self.name, self.argv, self.env = kind, f"{kind}-{n}", argv, env
        self.logdir, self.on_cut = logdir, on_cut
        self.proc, self.starts, self.reader, self.open = None, 0, None, None
        self.port = free_port() if kind in ("intake", "stats") else None

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.logdir, f"{self.name}-{self.starts}.log"), "w")
        argv = list(self.argv) + ([f"127.0.0.1:{self.port}"] if self.port else [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=self.env)
        if self.port:
            first = self.proc.stdout.readline().decode()
            if not first.startswith("listening on"):
                raise SystemExit(f"{self.name} did not start: {first!r} (see {log.name})")
        self.open = None
        self.reader = threading.Thread(target=self.read, args=(self.proc,), daemon=True)
        self.reader.start()

    def read(self, proc):
        for line in proc.stdout:
            words = line.decode().split()
            if words[:1] == ["batch"]:
                pairs = [p.split("=") for p in words[1].split(",")] if len(words) > 1 else []
                self.open = {e for e, _ in pairs}
                DELIVERY.update(pairs)
            elif words[:1] == ["end"]:
                self.open = None
            elif words[:1] == ["timeout"]:
                self.on_cut(float(words[1]), self.name, "timeout", self.open)
                self.open = None

    def kill9(self, record=True):
        self.proc.send_signal(signal.SIGKILL)
        at = time.time()
        self.proc.wait()
        self.reader.join()  # every line it wrote before it died is read
        if record:
            self.on_cut(at, self.name, "kill", self.open)


def call(port, method, path, body=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data,
                  headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)
    finally:
        c.close()


def scan(endpoint, table, sid):
    """The scenario's enrollments (contact ids) and webhook deliveries (contact id, status)."""
    import boto3
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    enrolled, deliveries = [], []
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if item.get("scenario_id", {}).get("S") != sid:
                continue
            if sk == "ENR":
                enrolled.append(int(item["contact_id"]["N"]))
            elif pk.startswith("DLVS#") and sk.startswith("dlv_") and item["step_id"]["S"] == "hook":
                deliveries.append((int(item["contact_id"]["N"]), item["status"]["S"], sk,
                                   [json.loads(x["S"]) for x in item.get("attempts", {}).get("L", [])]))
    return enrolled, deliveries


def queue_depths(endpoint, env):
    import boto3
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    out = {}
    for name in ("ADVANCE", "DELIVER"):
        a = sqs.get_queue_attributes(QueueUrl=env[f"HOOKLINE_{name}_QUEUE_URL"],
                                     AttributeNames=["All"])["Attributes"]
        out[name.lower()] = {k: int(a.get(k, 0)) for k in (
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed")}
    return out


def main():
    a = parse()
    endpoint = os.environ["HOOKLINE_TEST_AWS_ENDPOINT"]
    work = a.workdir or tempfile.mkdtemp(prefix="soak-aws-", dir="target")
    os.makedirs(work, exist_ok=True)
    rx = Receiver(a.fail, a.hang, a.hang_seconds, a.seed)
    made = subprocess.run(
        [a.worker, "setup", f"http://127.0.0.1:{rx.port}/soak", a.retry_window, a.retry_delays],
        check=True, capture_output=True, env={**os.environ, "RUST_LOG": "warn"})
    setup = json.loads(made.stdout.decode().strip().splitlines()[-1])
    sid = setup["scenario"]
    # webhook-deliver's instances: as the template passes its MaximumConcurrency (SPEC §6a)
    delivers = sum(int(n) for k, n in (w.split("=") for w in a.workers.split(",")) if k == "deliver")
    env = {**os.environ, **setup["env"], "RUST_LOG": "warn", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "HOOKLINE_DELIVER_INSTANCES": str(max(2, delivers))}
    lock = threading.Lock()
    # (time, worker name, "kill" | "timeout", envelope ids of the invocation cut short: None
    # when none ran, or the function is not a consumer)
    kills = []

    def on_cut(at, name, how, envelopes):
        with lock:
            kills.append((at, name, how, envelopes))

    workers = []
    for spec in a.workers.split(","):
        kind, n = spec.split("=")
        for i in range(int(n)):
            if kind in ("intake", "stats"):
                argv = [a.worker, "http", kind]
            elif kind == "deliver":
                argv = [a.worker, "consume", kind, str(a.deliver_visibility), str(a.deliver_timeout)]
            else:
                argv = [a.worker, "consume", kind, str(a.visibility), str(a.timeout)]
            workers.append(Worker(kind, i + 1, argv, env, work, on_cut))
    for w in workers:
        w.start()
    intake = [w for w in workers if w.kind == "intake"]
    stats_worker = next(w for w in workers if w.kind == "stats")
    stats_path = f"/v1/scenarios/{sid}/steps/hook/stats"
    print(f"moto {endpoint}, scenario {sid}, {len(workers)} function processes, workdir {work}",
          flush=True)

    batches = queue.Queue()
    for start in range(0, a.events, a.batch):
        batches.put((start, min(start + a.batch, a.events)))
    state = {"answered": 0, "resent_batches": 0, "sending": True, "settled": False}
    samples = {"taken": 0, "violations": []}
    started = time.time()

    stop_at = started + a.stop_after if a.stop_after else None

    # a batch sent and not answered is sent again, first, and even after --stop-after (a
    # client never leaves an event it sent unanswered); only new batches stop then
    again = queue.Queue()
    answered_contacts = set()

    def send():
        while True:
            try:
                lo, hi = again.get_nowait()
            except queue.Empty:
                if stop_at and time.time() > stop_at:
                    return
                try:
                    lo, hi = batches.get_nowait()
                except queue.Empty:
                    return
            events = [{"id": f"soak-{i}", "type": "group_added", "context": {"groupId": 7},
                       "contact": {"id": i + 1, "email": f"c{i + 1}@example.org"}}
                      for i in range(lo, hi)]
            try:
                status, body = call(random.choice(intake).port, "POST", "/v1/events/batch",
                                    {"events": events}, timeout=120)
            except (OSError, http.client.HTTPException):
                status, body = None, None
            items = (body or {}).get("items") or []
            if not (status == 200 and len(items) == hi - lo
                    and all("enrollments" in i for i in items)):
                with lock:
                    state["resent_batches"] += 1
                time.sleep(0.2)
                again.put((lo, hi))
                continue
            with lock:
                state["answered"] += hi - lo
                answered_contacts.update(range(lo + 1, hi + 1))

    def sample():
        while not state["settled"]:
            time.sleep(1.0)
            try:
                status, s = call(stats_worker.port, "GET", stats_path, timeout=60)
            except (OSError, http.client.HTTPException, ValueError):
                continue
            if status != 200:
                continue
            with lock:
                samples["taken"] += 1
                if s["accepted"] + s["pending"] + s["failed"] != s["passes"]:
                    samples["violations"].append(s)
                state["last"] = s

    rng = random.Random(a.seed)

    def killer():
        while state["sending"]:
            time.sleep(a.kill_every * rng.uniform(0.5, 1.5))
            if not state["sending"]:
                return
            w = rng.choice(workers)
            w.kill9()
            w.start()
            print(f"  kill {sum(1 for k in kills if k[2] == 'kill')} at "
                  f"{time.time() - started:.0f} s: {w.name}, {state['answered']} answered",
                  flush=True)

    threading.Thread(target=sample, daemon=True).start()
    killing = threading.Thread(target=killer, daemon=True)
    killing.start()
    while not again.empty() or (not batches.empty() and not (stop_at and time.time() > stop_at)):
        clients = [threading.Thread(target=send) for _ in range(a.clients)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
    sent_in = time.time() - started
    # the deliveries and their retries go on under kills: the kills stop once the statistics
    # show a pass for every event and none pending, or after as long as the sending took (at
    # least 30 s)
    until = time.time() + max(sent_in, 30.0)

    def done():
        s = state.get("last") or {}
        return s.get("passes", 0) >= state["answered"] and s.get("pending", 1) == 0

    while time.time() < until and not done():
        time.sleep(1)
    state["sending"] = False
    killing.join()
    kill_phase = time.time() - started
    print(f"sent {state['answered']} events in {sent_in:.0f} s "
          f"({state['answered'] / sent_in:.1f}/s), kills stopped at {kill_phase:.0f} s, "
          f"{sum(1 for k in kills if k[2] == 'kill')} kills, "
          f"{state['resent_batches']} batches sent again", flush=True)

    settle_start = time.time()
    last = None
    while time.time() - settle_start < a.settle:
        try:
            status, last = call(stats_worker.port, "GET", stats_path, timeout=60)
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(1)
            continue
        if status == 200 and last["pending"] == 0 and last["passes"] >= state["answered"]:
            break
        time.sleep(2)
    settled_in = time.time() - settle_start
    time.sleep(2)
    try:
        status, last = call(stats_worker.port, "GET", stats_path, timeout=60)
    except (OSError, http.client.HTTPException, ValueError):
        pass
    state["settled"] = True
    print(f"settled in {settled_in:.0f} s: {last}", flush=True)
    depths = queue_depths(endpoint, setup["env"])
    for w in workers:
        w.kill9(record=False)
    enrolled, deliveries = scan(endpoint, setup["env"]["HOOKLINE_TABLE"], sid)

    per_contact = collections.Counter(d[0] for d in deliveries)
    enrolled_set = set(enrolled)
    doubled = sorted(c for c, n in per_contact.items() if n > 1)
    without = sorted(enrolled_set - set(per_contact))
    unanswered = sorted(enrolled_set - answered_contacts)
    strangers = sorted(set(per_contact) - enrolled_set)
    statuses = collections.Counter(d[1] for d in deliveries)

    with rx.lock:
        accepted = list(rx.accepted)
        counts = dict(rx.counts)
    seen = {}
    for t, envelope in accepted:
        seen.setdefault(envelope, []).append(t)
    # a repeat is explained when the invocation that held the envelope's delivery was cut short
    # (killed, or dropped at its timeout) between the two answers: it sent, and died before it
    # recorded the answer
    cuts = collections.defaultdict(list)  # envelope id -> times its invocation was cut
    for at, _, _, envelopes in kills:
        for e in envelopes or ():
            cuts[e].append(at)
    deliver_stops = [k[0] for k in kills if k[1].startswith("deliver")]
    across_kill = unexplained = 0
    unexplained_ids = []
    for envelope, times in seen.items():
        times.sort()
        for t1, t2 in zip(times, times[1:]):
            if any(t1 - 2.0 <= k <= t2 + 1.0 for k in cuts[envelope]):
                across_kill += 1
            else:
                unexplained += 1
                near = min((round(k - t1, 1) for k in deliver_stops), key=abs, default=None)
                unexplained_ids.append({"id": envelope, "first_at": round(t1 - started, 1),
                                        "seconds_apart": round(t2 - t1, 1),
                                        "cut_short_at": [round(k - started, 1) for k in cuts[envelope]],
                                        "nearest_deliver_stop_after_first": near})

    # what the table holds of each unexplained repeat's delivery
    by_id = {d[2]: d for d in deliveries}
    for u in unexplained_ids:
        d = by_id.get(DELIVERY.get(u["id"]))
        if d:
            u["delivery"] = d[2]
            u["status"] = d[1]
            u["attempts"] = [{"at": x.get("at"), "status": x.get("status"), "error": x.get("error")}
                             for x in d[3]]
    stats = last or state.get("last") or {}
    by_kind = collections.Counter(k[1].rsplit("-", 1)[0] for k in kills if k[2] == "kill")
    report = {
        "events": a.events, "answered": state["answered"],
        "stopped_early": state["answered"] < a.events,
        "seconds_sending": round(sent_in), "events_per_second": round(state["answered"] / sent_in, 1),
        "seconds_under_kills": round(kill_phase), "seconds_settling": round(settled_in),
        "kills": sum(1 for k in kills if k[2] == "kill"), "kills_by_function": dict(by_kind),
        # a consumer killed while an invocation of it ran (the HTTP functions: not known)
        "consumer_kills_mid_invocation": sum(
            1 for k in kills if k[2] == "kill" and k[3] is not None),
        "deliver_kills_holding_deliveries": sum(
            1 for k in kills if k[2] == "kill" and k[3]),
        "invocations_dropped_at_timeout": sum(1 for k in kills if k[2] == "timeout"),
        "batches_sent_again": state["resent_batches"],
        "final_stats": stats, "queues_at_the_end": depths,
        "enrolled_contacts": len(enrolled_set), "enrollments": len(enrolled),
        "deliveries": len(deliveries), "delivery_statuses": dict(statuses),
        "contacts_with_more_than_one_delivery": doubled[:20],
        "enrolled_contacts_without_a_delivery": without[:20],
        "enrolled_contacts_whose_event_was_never_answered": unanswered[:20],
        "deliveries_of_contacts_not_enrolled": strangers[:20],
        "stats_samples": samples["taken"], "invariant_violations": samples["violations"][:5],
        "receiver_answers": counts, "distinct_ids_accepted": len(seen),
        # the envelope ids the invocations name are the ones the receiver gets (else the
        # attribution of repeats to kills below means nothing)
        "accepted_ids_named_by_an_invocation": len(set(seen) & DELIVERY.keys()),
        "accepted_twice_across_a_kill": across_kill,
        "accepted_twice_otherwise": unexplained,
        "accepted_twice_otherwise_ids": unexplained_ids[:20],
        "workdir": work,
    }
    print(json.dumps(report, indent=2))
    failures = []
    if state["answered"] != a.events and not stop_at:
        failures.append("not every event was answered")
    if (len(enrolled_set) < state["answered"] or len(enrolled) != len(enrolled_set)
            or doubled or without or strangers or len(deliveries) != len(enrolled_set)):
        failures.append("not exactly one delivery per enrolled contact")
    if samples["violations"]:
        failures.append(f"accepted + pending + failed != passes: {samples['violations'][:3]}")
    if seen and not set(seen) & DELIVERY.keys():
        failures.append("no accepted envelope id was named by an invocation: the attribution is off")
    if unexplained:
        failures.append("an envelope id accepted twice, its invocation not cut short between")
    if stats.get("pending", 1) != 0:
        failures.append(f"deliveries still pending after {a.settle:.0f} s of settling")
    elif stats.get("accepted") != len(seen):
        failures.append("the accepted statistic differs from the receiver's distinct accepted ids")
    for f in failures:
        print("FAILED:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
