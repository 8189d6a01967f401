"""The baseline: fetching messages with google-api-python-client the way
its documentation and the usual tutorials do it.

    python baseline.py URL FORMAT BATCH_SIZE OUT_IDS_FILE [rerun]

Lists every id (messages.list, maxResults=500, list_next), then fetches them
with BatchHttpRequest batches of BATCH_SIZE, `execute()`, and a callback that
prints errors (and so drops those messages). Delivered ids are written to
OUT_IDS_FILE, one per line, as they arrive. It is given its best reasonable shape: the list
calls use the library's own `num_retries`, and a batch whose HTTP exchange
breaks is reported and skipped rather than ending the script.

With `rerun`, the careful version of the same pattern: the ids that failed
(a part's error or a broken exchange) are fetched again in another round,
until none are left, after a pause that follows Google's advice for 429 and
5xx (exponential backoff from 1 s): 1 s after a round that made progress,
doubling up to 32 s while rounds deliver nothing.
"""

import sys
import time

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.http import BatchHttpRequest


def main():
    url, fmt, size, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rerun = sys.argv[5:] == ["rerun"]
    service = build(
        "gmail",
        "v1",
        credentials=Credentials(token="sim-token"),
        client_options={"api_endpoint": url + "/"},
        static_discovery=True,
        cache_discovery=False,
    )
    messages = service.users().messages()

    ids = []
    request = messages.list(userId="me", maxResults=500)
    while request is not None:
        response = request.execute(num_retries=5)
        ids += [m["id"] for m in response.get("messages", [])]
        request = messages.list_next(request, response)

    delivered = []
    # Written as they come, so a run stopped by the benchmark's time limit
    # still shows what it delivered.
    out = open(out_path, "w")

    def callback(request_id, response, exception):
        if exception is not None:
            print(f"error fetching {request_id}: {exception}", file=sys.stderr)
        else:
            delivered.append(response["id"])
            out.write(response["id"] + "\n")
            out.flush()

    def fetch(ids):
        for start in range(0, len(ids), size):
            # new_batch_http_request() ignores api_endpoint; build it by hand.
            batch = BatchHttpRequest(callback=callback, batch_uri=url + "/batch/gmail/v1")
            for mid in ids[start : start + size]:
                batch.add(messages.get(userId="me", id=mid, format=fmt), request_id=mid)
            try:
                batch.execute()
            except Exception as e:  # a reset or truncated answer: those messages are lost
                print(f"batch at {start} failed: {e}", file=sys.stderr)

    fetch(ids)
    pause = 1
    while rerun:
        got = set(delivered)
        left = [i for i in ids if i not in got]
        if not left:
            break
        print(f"rerunning {len(left)} failed ids after {pause} s", file=sys.stderr)
        time.sleep(pause)
        before = len(got)
        fetch(left)
        pause = 1 if len(set(delivered)) > before else min(pause * 2, 32)

    out.close()


if __name__ == "__main__":
    main()
