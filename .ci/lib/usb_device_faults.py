#!/usr/bin/env python3
"""Device faults over the real USB stack (issue 14, item 3, "over cdc_acm too"), run inside the
QEMU guest of .ci/usb-tests: the CANable and the SUMP analyzer (cdc_acm), the LCUS-1 relay
(ch341) and the ST-LINK's VCP telemetry (cdc_acm) each vanish (USB unplug), fall silent,
answer garbage and answer late while a scenario runs. The bench server (`rig sim --usbip
--fault-control`) injects each fault when this script asks, a second before the scenario's
3 s hold ends (the hold's start seen in events.jsonl: its first two steps logged). Each run must end in `error` (exit 2),
never `fail`, at the step after the fault began or in the hold, naming the device by the path
the rig config gives it, within that step's timeout plus 2 s, with a readable report.json.
After every fault the device is cleared (a vanished one plugged back in) and the last run
must pass: the bench came back.

usage: usb_device_faults.py RIG CONFIG CONTROL_HOST:PORT WORK_DIR
"""

import json
import os
import socket
import subprocess
import sys
import time
import tomllib

RIG, CONFIG, CONTROL, WORK = sys.argv[1:5]
HOLD_MS = 3000
SETTLE_TIMEOUT_MS = 3000

cfg = tomllib.load(open(CONFIG, "rb"))
PATHS = {
    "can": cfg["can"]["port"],
    "pulse_meter": cfg["pulse_meter"]["port"],
    "power": cfg["power"]["port"],
    "telemetry": cfg["telemetry"]["port"],
}

# The step that meets each device's fault (after a pass and the hold the fault starts in).
MEETS = {
    "can": '[[steps]]\naction = "set_temperature"\ncelsius = 60\n\n'
    '[[steps]]\naction = "expect_pulse"\nus = 1185\n',
    "pulse_meter": '[[steps]]\naction = "expect_pulse"\nus = 1455\n',
    "telemetry": '[[steps]]\naction = "expect_telemetry"\ncelsius = 90\nsource = "bcast"\n',
    "power": '[[steps]]\naction = "power_cycle"\n',
}

power = cfg["power"]
probe = cfg["probe"]
# Each step's own bound, from the scenario and the rig config (scenarios/README.md).
STEP_TIMEOUT_MS = {
    "expect_pulse": SETTLE_TIMEOUT_MS,
    "expect_telemetry": 2500,
    # Power-off confirmed within 2 s, the off time, the settle time, the attach's bound.
    "power_cycle": 2000 + power["off_ms"] + power["settle_ms"] + probe["attach_timeout_ms"],
    "set_temperature": 0,
    # A hold that meets the fault still holds its time; the error comes at its end.
    "hold": HOLD_MS,
}

CASES = [
    (device, fault)
    for device in ("can", "pulse_meter", "power", "telemetry")
    for fault in ("silent", "garbage", "slow delay_ms=5000", "vanish")
    if not (device == "telemetry" and fault == "vanish")  # the VCP leaves with the ST-LINK
]


def control(command):
    host, port = CONTROL.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(command.encode() + b"\n")
        answer = s.makefile().readline().strip()
    if not answer.startswith("ok"):
        sys.exit(f"usb-faults: the bench refused {command!r}: {answer}")
    return answer


def scenario(path, device, faulty=True):
    text = (
        f'name = "usb-fault-{device}"\n[defaults]\nsettle_timeout_ms = {SETTLE_TIMEOUT_MS}\n\n'
        '[[steps]]\naction = "set_temperature"\ncelsius = 90\n\n'
        '[[steps]]\naction = "expect_pulse"\nus = 1455\n\n'
        f'[[steps]]\naction = "hold"\nms = {HOLD_MS}\n\n{MEETS[device]}'
    )
    with open(path, "w") as f:
        f.write(text)


def steps_logged(reports):
    """How many steps the run under way has finished (its events.jsonl)."""
    for run in sorted(os.listdir(reports)) if os.path.isdir(reports) else []:
        events = os.path.join(reports, run, "events.jsonl")
        if os.path.exists(events):
            with open(events) as f:
                return sum(1 for line in f if '"event":"step"' in line)
    return 0


def wait_for_path(path, present, limit_s=30):
    end = time.monotonic() + limit_s
    while os.path.exists(path) != present:
        if time.monotonic() > end:
            sys.exit(f"usb-faults: {path} still {'missing' if present else 'there'} after {limit_s} s")
        time.sleep(0.1)


def run_case(n, device, fault):
    folder = os.path.join(WORK, f"{n:02}-{device}-{fault.split()[0]}")
    os.makedirs(folder)
    scen = os.path.join(folder, "fault.toml")
    scenario(scen, device)
    reports = os.path.join(folder, "reports")
    t0 = time.monotonic()
    rig = subprocess.Popen(
        [RIG, "run", "--rig", CONFIG, "--reports", reports, scen],
        stdout=open(os.path.join(folder, "rig.out"), "w"),
        stderr=subprocess.STDOUT,
    )
    injected = None
    hold_began = None
    while rig.poll() is None:
        if hold_began is None and steps_logged(reports) >= 2:
            hold_began = time.monotonic()
        # A second before the hold ends: the step after it meets the fault within less than
        # a slow device's delay (a 5 s late stream would otherwise be on time again).
        if injected is None and hold_began is not None and time.monotonic() - hold_began >= (HOLD_MS - 1000) / 1000:
            injected = control(f"fault {device} {fault}")
        if time.monotonic() - t0 > 240:
            rig.kill()
            sys.exit(f"usb-faults: {device} {fault}: the run did not end within 240 s")
        time.sleep(0.05)
    took = time.monotonic() - t0
    control(f"clear {device}")
    if fault == "vanish":
        wait_for_path(PATHS[device], True)
        subprocess.run(["udevadm", "settle"], check=False)
    problems = []
    if injected is None:
        problems.append("the run ended before its hold: the fault was never injected")
    # Run folders only (the reports folder also holds history.sqlite).
    runs = sorted(d for d in os.listdir(reports) if os.path.isdir(os.path.join(reports, d))) if os.path.isdir(reports) else []
    report = None
    if runs:
        try:
            report = json.load(open(os.path.join(reports, runs[-1], "report.json")))
        except (OSError, ValueError) as e:
            problems.append(f"report.json unreadable: {e}")
    else:
        problems.append("no run folder")
    if rig.returncode != 2:
        problems.append(f"exit {rig.returncode}, want 2 (error)")
    line = f"{device:11} {fault:18} exit {rig.returncode} in {took:5.1f} s"
    if report is not None:
        steps = report["scenarios"][0]["steps"]
        bad = next((s for s in steps if s["outcome"] != "pass"), None)
        if report["outcome"] != "error":
            problems.append(f"run outcome {report['outcome']}, want error")
        if bad is None:
            problems.append("every step passed")
        else:
            msg = bad.get("message") or ""
            limit = STEP_TIMEOUT_MS[bad["action"]] + 2000
            line += f"; step {bad['index']} {bad['action']} {bad['outcome']} after {bad['duration_ms']:.0f} ms (limit {limit} ms): {msg}"
            if bad["outcome"] != "error":
                problems.append(f"step {bad['index']} {bad['action']} ended {bad['outcome']}, want error")
            if bad["index"] < 3:
                problems.append(f"step {bad['index']} {bad['action']} met it, before the hold")
            if PATHS[device] not in msg:
                problems.append(f"the message does not name {PATHS[device]}")
            if bad["duration_ms"] > limit:
                problems.append(f"{bad['action']} took {bad['duration_ms']:.0f} ms, over its timeout + 2 s ({limit} ms)")
    print("   " + line, flush=True)
    return [f"{device} {fault}: {p}" for p in problems]


def main():
    os.makedirs(WORK, exist_ok=True)
    problems = []
    for n, (device, fault) in enumerate(CASES, 1):
        problems += run_case(n, device, fault)
    # Every device cleared, the vanished ones plugged back in: a run passes again.
    folder = os.path.join(WORK, "after")
    os.makedirs(folder)
    scen = os.path.join(folder, "after.toml")
    scenario(scen, "pulse_meter")
    after = subprocess.run(
        [RIG, "run", "--rig", CONFIG, "--reports", os.path.join(folder, "reports"), scen],
        stdout=open(os.path.join(folder, "rig.out"), "w"),
        stderr=subprocess.STDOUT,
        timeout=240,
    )
    print(f"   after every fault cleared: exit {after.returncode}", flush=True)
    if after.returncode != 0:
        problems.append(f"after the faults were cleared the run exited {after.returncode}, want 0 (see {folder}/rig.out)")
    for p in problems:
        print(f"usb-faults: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
