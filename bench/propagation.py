#!/usr/bin/env python3
"""Sign-out propagation between two instances of the app on one database (scripts/bench).

    python3 bench/propagation.py <base-A> <base-B> <cookie-file> [cookie-name]

For each signed-in session in <cookie-file> (one cookie value a line; each is one trial, and is signed out):
load /api/me on B (200, so B has the session cached), read the CSRF token from A's profile page, pause at random
(up to 0.5 s), POST /logout on A, then poll B's /api/me every 10 ms until it answers 401. Prints each trial and
min/median/max of the time from sending the sign-out on A to B's first refusal (and from A's answer to it).
Loopback only; each trial is bounded.
"""
import http.client
import random
import re
import statistics
import sys
import time
import urllib.parse

POLL_EVERY = 0.010
# A random pause before each sign-out, longer than B's interval between two reads of the change feed: otherwise
# every trial, ending just after one of B's reads, signs out at the same point of B's cycle.
MAX_PAUSE = 0.5
GIVE_UP_AFTER = 10.0


def request(base, method, path, cookie, name, body=None):
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    headers = {"Cookie": f"{name}={cookie}"}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    base_a, base_b, cookie_file = sys.argv[1:4]
    name = sys.argv[4] if len(sys.argv) > 4 else "signin_session"
    cookies = [line.strip() for line in open(cookie_file) if line.strip()]
    from_send, from_answer, polls = [], [], []
    for trial, cookie in enumerate(cookies, 1):
        for _ in range(2):
            status, _ = request(base_b, "GET", "/api/me", cookie, name)
            if status != 200:
                sys.exit(f"trial {trial}: B answered {status} to a signed-in /api/me before the sign-out")
        status, page = request(base_a, "GET", "/", cookie, name)
        match = re.search(rb'name="csrf" value="([^"]+)"', page)
        if status != 200 or not match:
            sys.exit(f"trial {trial}: A's profile page ({status}) has no CSRF token")
        body = urllib.parse.urlencode({"csrf": match.group(1).decode()})
        time.sleep(random.uniform(0, MAX_PAUSE))
        sent = time.monotonic()
        status, _ = request(base_a, "POST", "/logout", cookie, name, body)
        answered = time.monotonic()
        if status != 303:
            sys.exit(f"trial {trial}: POST /logout on A answered {status}, not 303")
        n = 0
        while True:
            n += 1
            status, _ = request(base_b, "GET", "/api/me", cookie, name)
            now = time.monotonic()
            if status == 401:
                break
            if status != 200:
                sys.exit(f"trial {trial}: B answered {status} while polling")
            if now - sent > GIVE_UP_AFTER:
                sys.exit(f"trial {trial}: B still accepts the session {GIVE_UP_AFTER:.0f} s after the sign-out")
            time.sleep(POLL_EVERY)
        from_send.append((now - sent) * 1000)
        from_answer.append((now - answered) * 1000)
        polls.append(n)
        print(f"  trial {trial:2}: B refused {from_send[-1]:6.1f} ms after the sign-out was sent "
              f"({from_answer[-1]:6.1f} ms after A answered; {n} polls)")

    def summary(values):
        return f"min {min(values):.1f} ms, median {statistics.median(values):.1f} ms, max {max(values):.1f} ms"

    print(f"sign-out propagation A -> B over {len(from_send)} trials: {summary(from_send)} "
          f"(from A's answer: {summary(from_answer)})")


if __name__ == "__main__":
    main()
