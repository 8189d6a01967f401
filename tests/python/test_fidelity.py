"""The simulator as Google's own Python client sees it.

google-api-python-client builds every request from Gmail's discovery
document and parses every answer itself, so what passes here is what a real
client accepts: URL shapes, JSON shapes, batch framing and error JSON.
"""

import base64
import email

import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

TOKEN = "sim-token"


def service(url, token=TOKEN):
    creds = Credentials(token=token)
    return build(
        "gmail",
        "v1",
        credentials=creds,
        client_options={"api_endpoint": url + "/"},
        static_discovery=True,
        cache_discovery=False,
    )


def new_batch(svc, url, callback=None):
    # new_batch_http_request() takes its URL from the discovery document's
    # rootUrl and ignores api_endpoint; build the batch ourselves.
    return BatchHttpRequest(callback=callback, batch_uri=url + "/batch/gmail/v1")


def all_ids(svc, **kw):
    ids, token, pages = [], None, 0
    while True:
        resp = svc.users().messages().list(userId="me", pageToken=token, **kw).execute()
        ids += [m["id"] for m in resp.get("messages", [])]
        pages += 1
        token = resp.get("nextPageToken")
        if not token:
            return ids, pages


def test_profile(sim):
    p = service(sim.url).users().getProfile(userId="me").execute()
    assert p["emailAddress"] == "me@example.com"
    assert p["messagesTotal"] == 600
    assert int(p["historyId"]) > 0


def test_list_pages_through_every_message_once(sim):
    svc = service(sim.url)
    ids, pages = all_ids(svc, maxResults=500, includeSpamTrash=True)
    assert len(ids) == 600 and len(set(ids)) == 600
    assert pages == 2
    # Default page size is 100; spam and trash are hidden unless asked for.
    first = svc.users().messages().list(userId="me").execute()
    assert len(first["messages"]) == 100
    visible, _ = all_ids(svc, maxResults=500)
    assert 0 < len(visible) < 600


def test_list_with_query_and_labels(sim):
    svc = service(sim.url)
    unread, _ = all_ids(svc, q="is:unread", maxResults=500)
    inbox_unread, _ = all_ids(svc, labelIds=["INBOX", "UNREAD"], maxResults=500)
    assert unread and inbox_unread
    assert set(inbox_unread) <= set(unread)
    for mid in inbox_unread[:5]:
        m = svc.users().messages().get(userId="me", id=mid, format="minimal").execute()
        assert "UNREAD" in m["labelIds"] and "INBOX" in m["labelIds"]
    with pytest.raises(HttpError) as e:
        svc.users().messages().list(userId="me", q="frobnicate:yes").execute()
    assert e.value.status_code == 400
    assert "frobnicate" in e.value.reason


def test_get_in_each_format(sim):
    svc = service(sim.url)
    mid = svc.users().messages().list(userId="me", maxResults=1).execute()["messages"][0]["id"]
    msgs = svc.users().messages()
    minimal = msgs.get(userId="me", id=mid, format="minimal").execute()
    assert minimal["id"] == mid and "payload" not in minimal and "raw" not in minimal
    assert int(minimal["internalDate"]) > 0 and minimal["sizeEstimate"] > 0
    meta = msgs.get(userId="me", id=mid, format="metadata", metadataHeaders=["From", "Subject"]).execute()
    names = {h["name"].lower() for h in meta["payload"]["headers"]}
    assert names == {"from", "subject"}
    full = msgs.get(userId="me", id=mid, format="full").execute()
    assert full["payload"]["mimeType"]
    raw = msgs.get(userId="me", id=mid, format="raw").execute()
    parsed = email.message_from_bytes(base64.urlsafe_b64decode(raw["raw"]))
    assert parsed["Message-ID"]
    assert raw["sizeEstimate"] == len(base64.urlsafe_b64decode(raw["raw"]))
    subject = next(h["value"] for h in meta["payload"]["headers"] if h["name"].lower() == "subject")
    assert subject
    # Every message of the page parses in full format with a payload tree.
    for m in svc.users().messages().list(userId="me", maxResults=30).execute()["messages"]:
        f = msgs.get(userId="me", id=m["id"]).execute()
        assert f["payload"]["partId"] == ""
        for part in f["payload"].get("parts", []):
            assert "mimeType" in part and "body" in part


def test_batch_of_50_gets_delivers_parsed_bodies(sim):
    svc = service(sim.url)
    ids = svc.users().messages().list(userId="me", maxResults=50).execute()["messages"]
    got = {}

    def cb(request_id, response, exception):
        assert exception is None, exception
        got[request_id] = response

    batch = new_batch(svc, sim.url, cb)
    for m in ids:
        batch.add(svc.users().messages().get(userId="me", id=m["id"], format="metadata"), request_id=m["id"])
    batch.execute()
    assert set(got) == {m["id"] for m in ids}
    for rid, resp in got.items():
        assert resp["id"] == rid
        assert resp["payload"]["headers"]


def test_batch_parts_that_fail_reach_the_callback_as_http_errors(faulty_sim):
    url = faulty_sim.url
    svc = service(url)
    ids = None
    for _ in range(20):  # the list call itself may fail: retry by hand
        try:
            ids = [m["id"] for m in svc.users().messages().list(userId="me", maxResults=40).execute()["messages"]]
            break
        except HttpError:
            pass
    assert ids
    outcomes = {}

    def cb(request_id, response, exception):
        outcomes[request_id] = exception if exception is not None else response

    batch = new_batch(svc, url, cb)
    for mid in ids:
        batch.add(svc.users().messages().get(userId="me", id=mid, format="minimal"), request_id=mid)
    batch.execute()
    assert len(outcomes) == len(ids)
    errors = [o for o in outcomes.values() if isinstance(o, HttpError)]
    oks = [o for o in outcomes.values() if not isinstance(o, HttpError)]
    assert errors and oks
    for e in errors:
        assert e.status_code in (503, 404)
        details = e.error_details
        reason = details[0]["reason"] if isinstance(details, list) else None
        assert reason == ("backendError" if e.status_code == 503 else "notFound")


def test_error_json_parses_into_http_error(sim):
    svc = service(sim.url)
    with pytest.raises(HttpError) as e:
        svc.users().messages().get(userId="me", id="0123456789abcdef").execute()
    assert e.value.status_code == 404
    assert e.value.reason == "Requested entity was not found."
    assert e.value.error_details[0]["reason"] == "notFound"

    # A refused token: the client sees 401 and, holding no refresh token,
    # gives up.
    from google.auth.exceptions import RefreshError

    with pytest.raises(RefreshError):
        service(sim.url, token="wrong").users().getProfile(userId="me").execute()

    with pytest.raises(HttpError) as e:
        svc.users().messages().list(userId="me", maxResults=501).execute()
    assert e.value.status_code == 400

    with pytest.raises(HttpError) as e:
        svc.users().messages().batchModify(
            userId="me", body={"ids": ["%016x" % i for i in range(1001)], "addLabelIds": ["STARRED"]}
        ).execute()
    assert e.value.status_code == 400
    assert e.value.reason == "Number of ids cannot exceed 1000"


def test_a_401_makes_the_client_refresh_through_the_token_endpoint(sim):
    creds = Credentials(
        token="expired-or-wrong",
        refresh_token="sim-refresh-token",
        token_uri=sim.url + "/token",
        client_id="client-id",
        client_secret="client-secret",
    )
    svc = build(
        "gmail", "v1", credentials=creds, client_options={"api_endpoint": sim.url + "/"},
        static_discovery=True, cache_discovery=False,
    )
    p = svc.users().getProfile(userId="me").execute()
    assert p["emailAddress"] == "me@example.com"
    assert creds.token != "expired-or-wrong"
    assert creds.expiry is not None


def test_user_without_gmail_and_service_account_without_subject(sim):
    import urllib.request, urllib.parse, json as j

    req = urllib.request.Request(sim.url + "/_sim/tokens", data=urllib.parse.urlencode({}).encode(), method="POST")
    sa_token = j.load(urllib.request.urlopen(req))["access_token"]
    with pytest.raises(HttpError) as e:
        service(sim.url, token=sa_token).users().messages().list(userId="me").execute()
    assert e.value.status_code == 400
    assert e.value.reason == "Precondition check failed."
    assert e.value.error_details[0]["reason"] == "failedPrecondition"

    req = urllib.request.Request(
        sim.url + "/_sim/tokens", data=urllib.parse.urlencode({"user": "nogmail@example.com"}).encode(), method="POST"
    )
    tok = j.load(urllib.request.urlopen(req))["access_token"]
    with pytest.raises(HttpError) as e:
        service(sim.url, token=tok).users().getProfile(userId="me").execute()
    assert e.value.status_code == 400
    assert e.value.reason == "Mail service not enabled"


def test_threads_labels_history_and_mutations(sim):
    svc = service(sim.url)
    u = svc.users()
    labels = u.labels().list(userId="me").execute()["labels"]
    ids = {l["id"] for l in labels}
    assert {"INBOX", "SENT", "SPAM", "TRASH", "UNREAD", "STARRED"} <= ids
    assert any(l["type"] == "user" for l in labels)

    threads = u.threads().list(userId="me", maxResults=10).execute()["threads"]
    t = u.threads().get(userId="me", id=threads[0]["id"], format="minimal").execute()
    assert t["messages"] and all(m["threadId"] == t["id"] for m in t["messages"])

    start = u.getProfile(userId="me").execute()["historyId"]
    mid = u.messages().list(userId="me", maxResults=1).execute()["messages"][0]["id"]
    m = u.messages().modify(userId="me", id=mid, body={"addLabelIds": ["STARRED"]}).execute()
    assert "STARRED" in m["labelIds"]
    u.messages().trash(userId="me", id=mid).execute()
    h = u.history().list(userId="me", startHistoryId=start).execute()
    changed = [r for r in h["history"] if r["messages"][0]["id"] == mid]
    assert any("labelsAdded" in r and "STARRED" in r["labelsAdded"][0]["labelIds"] for r in changed)
    assert any("labelsAdded" in r and "TRASH" in r["labelsAdded"][0]["labelIds"] for r in changed)
    assert int(h["historyId"]) > int(start)
    with pytest.raises(HttpError) as e:
        u.history().list(userId="me", startHistoryId="1").execute()
    assert e.value.status_code == 404


def service_account_info(url):
    # A throwaway key: the simulator reads the JWT's claims and does not
    # check its signature, but Google's library must be able to sign.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "sim-project",
        "private_key_id": "sim-key",
        "private_key": pem,
        "client_email": "robot@sim-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": url + "/token",
    }


def test_service_account_with_and_without_a_delegated_subject(sim):
    from google.oauth2 import service_account

    info = service_account_info(sim.url)
    scopes = ["https://www.googleapis.com/auth/gmail.readonly"]
    creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    delegated = creds.with_subject("alice@example.com")
    svc = build(
        "gmail", "v1", credentials=delegated, client_options={"api_endpoint": sim.url + "/"},
        static_discovery=True, cache_discovery=False,
    )
    assert svc.users().getProfile(userId="me").execute()["emailAddress"] == "alice@example.com"
    # A read-only token cannot modify.
    mid = svc.users().messages().list(userId="me", maxResults=1).execute()["messages"][0]["id"]
    with pytest.raises(HttpError) as e:
        svc.users().messages().trash(userId="me", id=mid).execute()
    assert e.value.status_code == 403

    bare = build(
        "gmail", "v1", credentials=creds, client_options={"api_endpoint": sim.url + "/"},
        static_discovery=True, cache_discovery=False,
    )
    with pytest.raises(HttpError) as e:
        bare.users().messages().list(userId="me").execute()
    assert e.value.status_code == 400
    assert e.value.reason == "Precondition check failed."


def test_answers_are_gzipped_because_the_client_asks_as_google_documents(sim):
    # httplib2 sends Accept-Encoding: gzip and the client puts "(gzip)" in
    # its User-Agent; the simulator compresses only when both are there.
    before = sim.stats()["gzip_responses"]
    p = service(sim.url).users().getProfile(userId="me").execute()
    assert p["emailAddress"] == "me@example.com"
    assert sim.stats()["gzip_responses"] > before


def test_fields_gives_partial_responses(sim):
    msgs = service(sim.url).users().messages()
    page = msgs.list(userId="me", maxResults=5, fields="messages(id),nextPageToken").execute()
    assert set(page) == {"messages", "nextPageToken"}
    assert all(set(m) == {"id"} for m in page["messages"])
    mid = page["messages"][0]["id"]
    assert set(msgs.get(userId="me", id=mid, fields="id,threadId").execute()) == {"id", "threadId"}
    m = msgs.get(userId="me", id=mid, format="metadata", metadataHeaders=["Subject"], fields="payload/headers").execute()
    assert list(m) == ["payload"] and list(m["payload"]) == ["headers"]
    assert [h["name"] for h in m["payload"]["headers"]] == ["Subject"]
    with pytest.raises(HttpError) as e:
        msgs.get(userId="me", id=mid, fields="idd").execute()
    assert e.value.status_code == 400
    assert e.value.error_details[0]["reason"] == "invalidParameter"


def test_a_long_get_goes_as_post_with_the_method_override(sim):
    msgs = service(sim.url).users().messages()
    mid = msgs.list(userId="me", maxResults=1).execute()["messages"][0]["id"]
    # Past 2 KB of URL the client sends POST, X-HTTP-Method-Override: GET and
    # the query as a form body.
    names = ["Subject", "From"] + ["X-Not-There-%04d" % i for i in range(150)]
    before = sim.stats()["method_overrides"]
    m = msgs.get(userId="me", id=mid, format="metadata", metadataHeaders=names).execute()
    assert sim.stats()["method_overrides"] == before + 1
    assert m["id"] == mid
    assert {h["name"].lower() for h in m["payload"]["headers"]} <= {"subject", "from"}
    assert m["payload"]["headers"]


def test_no_credentials_is_401_required(sim):
    import httplib2

    bare = build(
        "gmail", "v1", http=httplib2.Http(), client_options={"api_endpoint": sim.url + "/"},
        static_discovery=True, cache_discovery=False,
    )
    with pytest.raises(HttpError) as e:
        bare.users().getProfile(userId="me").execute()
    assert e.value.status_code == 401
    assert e.value.error_details[0]["reason"] == "required"
    assert e.value.error_details[0]["message"] == "Login Required."


def test_a_502_is_googles_html_page_and_the_client_raises_with_it(html_sim):
    with pytest.raises(HttpError) as e:
        service(html_sim.url).users().getProfile(userId="me").execute()
    assert e.value.status_code == 502
    assert e.value.resp["content-type"].startswith("text/html")
    assert b"<title>Error 502 (Server Error)!!1</title>" in e.value.content
    # In a batch the part's callback gets the same.
    got = []
    svc = service(html_sim.url)
    batch = new_batch(svc, html_sim.url, lambda rid, resp, exc: got.append(exc))
    batch.add(svc.users().getProfile(userId="me"))
    batch.execute()
    assert isinstance(got[0], HttpError) and got[0].status_code == 502
    assert b"Error 502 (Server Error)!!1" in got[0].content


def test_a_rate_penalty_says_retry_after_in_the_header_and_the_message(penalty_sim):
    import datetime

    msgs = service(penalty_sim.url).users().messages()
    ids = [m["id"] for m in msgs.list(userId="me", maxResults=5).execute()["messages"]]
    refused = None
    for mid in ids:
        try:
            msgs.get(userId="me", id=mid, format="minimal").execute()
        except HttpError as e:
            refused = e
            break
    assert refused is not None, "a burst of gets passes 50 units a second"
    # Locked out: even the cheapest call is refused, saying until when.
    with pytest.raises(HttpError) as e:
        service(penalty_sim.url).users().labels().list(userId="me").execute()
    err = e.value
    assert err.status_code in (403, 429)
    assert err.error_details[0]["reason"] in ("userRateLimitExceeded", "rateLimitExceeded")
    assert 3590 <= int(err.resp["retry-after"]) <= 3600
    at = err.reason.split("Retry after ")[1]
    end = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
    left = (end - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert 3500 < left <= 3600
    assert penalty_sim.stats()["penalties"] == 1


def test_labels_create_and_rfc822msgid_search(sim):
    u = service(sim.url).users()
    made = u.labels().create(userId="me", body={"name": "Fidelity/New"}).execute()
    assert made["name"] == "Fidelity/New" and made["id"].startswith("Label_")
    with pytest.raises(HttpError) as e:
        u.labels().create(userId="me", body={"name": "fidelity/new"}).execute()
    assert e.value.status_code == 409
    with pytest.raises(HttpError) as e:
        u.labels().create(userId="me", body={"name": "Muted"}).execute()
    assert e.value.status_code == 400

    mid = u.messages().list(userId="me", maxResults=1).execute()["messages"][0]["id"]
    m = u.messages().get(userId="me", id=mid, format="metadata", metadataHeaders=["Message-ID"]).execute()
    header = m["payload"]["headers"][0]["value"]
    found = u.messages().list(userId="me", q="rfc822msgid:" + header.strip("<>")).execute()
    assert [x["id"] for x in found["messages"]] == [mid]


DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"


def directory(url, credentials):
    # The Admin SDK's discovery document ships with the client
    # (discovery_cache/documents/admin.directory_v1.json).
    return build(
        "admin", "directory_v1", credentials=credentials, client_options={"api_endpoint": url + "/"},
        static_discovery=True, cache_discovery=False,
    )


def test_the_admin_sdk_client_pages_through_a_domain_of_1200_users(domain_sim):
    users = directory(domain_sim.url, Credentials(token=TOKEN)).users()
    req = users.list(customer="my_customer", maxResults=500, orderBy="email")
    seen, pages = [], 0
    while req is not None:
        resp = req.execute()
        assert resp["kind"] == "admin#directory#users"
        seen += resp.get("users", [])
        pages += 1
        req = users.list_next(req, resp)
    assert pages == 3
    emails = [u["primaryEmail"] for u in seen]
    assert len(emails) == 1200 == len(set(emails))
    assert emails == sorted(emails)
    by = {u["primaryEmail"]: u for u in seen}
    assert by["admin@example.com"]["isAdmin"] is True
    assert by["user2@example.com"]["suspended"] is True
    assert by["user7@example.com"]["isMailboxSetup"] is False
    assert by["user1@example.com"]["orgUnitPath"] == "/Sales"

    active = users.list(customer="my_customer", query="isSuspended=false", maxResults=500).execute()
    assert active["users"] and all(u["suspended"] is False for u in active["users"])
    sales = users.list(domain="example.com", query="orgUnitPath=/Sales", maxResults=5,
                       fields="users(primaryEmail,orgUnitPath),nextPageToken").execute()
    assert [u["orgUnitPath"] for u in sales["users"]] == ["/Sales"] * 5
    assert set(sales["users"][0]) == {"primaryEmail", "orgUnitPath"}
    assert users.get(userKey="user7@example.com").execute()["isMailboxSetup"] is False

    with pytest.raises(HttpError) as e:
        users.list(customer="my_customer", maxResults=501).execute()
    assert e.value.status_code == 400 and e.value.reason == "Invalid Input"
    with pytest.raises(HttpError) as e:
        users.list().execute()
    assert e.value.status_code == 400 and e.value.reason == "Bad Request"


def test_a_service_account_lists_as_the_admin_and_acts_as_each_user(domain_sim):
    from google.oauth2 import service_account

    info = service_account_info(domain_sim.url)
    admin = service_account.Credentials.from_service_account_info(
        info, scopes=[DIRECTORY_SCOPE], subject="admin@example.com")
    first = directory(domain_sim.url, admin).users().list(customer="my_customer", maxResults=10).execute()
    assert len(first["users"]) == 10 and "nextPageToken" in first

    # A user who is not an administrator may not list.
    plain = service_account.Credentials.from_service_account_info(
        info, scopes=[DIRECTORY_SCOPE], subject="user1@example.com")
    with pytest.raises(HttpError) as e:
        directory(domain_sim.url, plain).users().list(customer="my_customer").execute()
    assert e.value.status_code == 403
    assert e.value.reason == "Not Authorized to access this resource/api"

    gmail_scope = ["https://www.googleapis.com/auth/gmail.readonly"]
    base = service_account.Credentials.from_service_account_info(info, scopes=gmail_scope)

    def gmail(subject):
        return build("gmail", "v1", credentials=base.with_subject(subject),
                     client_options={"api_endpoint": domain_sim.url + "/"},
                     static_discovery=True, cache_discovery=False)

    assert gmail("user1100@example.com").users().getProfile(userId="me").execute()["messagesTotal"] == 20

    # A suspended user: its ids list, its messages answer backendError.
    s = gmail("user5@example.com").users()
    ids = s.messages().list(userId="me").execute()["messages"]
    with pytest.raises(HttpError) as e:
        s.messages().get(userId="me", id=ids[0]["id"]).execute()
    assert e.value.status_code == 500
    assert e.value.error_details[0]["reason"] == "backendError"

    # No Gmail: 400 failedPrecondition.
    with pytest.raises(HttpError) as e:
        gmail("user7@example.com").users().getProfile(userId="me").execute()
    assert e.value.status_code == 400 and e.value.reason == "Mail service not enabled"

    # A subject outside the domain: the token endpoint refuses it.
    from google.auth.exceptions import RefreshError
    with pytest.raises(RefreshError) as e:
        gmail("someone@other.org").users().getProfile(userId="me").execute()
    assert "invalid_grant" in str(e.value) and "Invalid email or User ID" in str(e.value)


def test_import_and_insert_with_a_media_upload(sim):
    # messages.import as Google's client sends it: a MediaIoBaseUpload
    # goes to /upload/gmail/v1/... as multipart/related with the body's
    # metadata (labelIds); without a body, uploadType=media.
    import io
    from googleapiclient.http import MediaIoBaseUpload

    svc = service(sim.url)

    def run(req):
        # For uploads the client keeps the discovery document's https scheme
        # and swaps only the host for api_endpoint; the simulator serves
        # plain http on loopback.
        req.uri = req.uri.replace("https://", "http://", 1)
        return req.execute()

    label = svc.users().labels().create(userId="me", body={"name": "Fidelity/Imported"}).execute()
    raw = (
        b"From: Ann <ann@example.org>\r\nTo: alice@example.com\r\nSubject: py import\r\n"
        b"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <py-import-1@example.org>\r\n\r\n"
        b"Imported by googleapiclient.\r\n"
    )
    media = MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822")
    got = svc.users().messages().import_(
        userId="me",
        body={"labelIds": ["INBOX", label["id"]]},
        media_body=media,
        neverMarkSpam=True,
        internalDateSource="dateHeader",
    )
    got = run(got)
    assert set(got["labelIds"]) == {"INBOX", label["id"]}
    full = svc.users().messages().get(userId="me", id=got["id"], format="raw").execute()
    assert base64.urlsafe_b64decode(full["raw"]) == raw
    assert full["internalDate"] == "1704189600000"

    # The same Message-ID again: Gmail answers with the same message.
    again = run(svc.users().messages().import_(
        userId="me", body={"labelIds": ["STARRED"]},
        media_body=MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822"),
    ))
    assert again["id"] == got["id"]
    hits = svc.users().messages().list(userId="me", q="rfc822msgid:py-import-1@example.org").execute()
    assert [m["id"] for m in hits["messages"]] == [got["id"]]

    # insert, and the plain JSON form with raw.
    ins = run(svc.users().messages().insert(
        userId="me", media_body=MediaIoBaseUpload(io.BytesIO(b"Subject: ins\r\n\r\nx\r\n"), mimetype="message/rfc822"),
    ))
    assert ins["id"]
    plain = svc.users().messages().import_(
        userId="me",
        body={"raw": base64.urlsafe_b64encode(b"Subject: json form\r\nMessage-ID: <py-json@x>\r\n\r\nx\r\n").decode(), "labelIds": ["INBOX"]},
    ).execute()
    assert plain["labelIds"] == ["INBOX"]

    # A label that does not exist is Gmail's 400.
    with pytest.raises(HttpError) as e:
        run(svc.users().messages().import_(
            userId="me", body={"labelIds": ["Label_424242"]},
            media_body=MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822"),
        ))
    assert e.value.resp.status == 400
    assert "Invalid label" in str(e.value)


def test_import_with_a_resumable_upload_in_chunks(sim):
    # MediaIoBaseUpload(resumable=True): the client opens a session
    # (uploadType=resumable, 200 with Location), PUTs 256 KiB chunks,
    # reads each 308's Range, and gets the Message with the last chunk.
    import io
    from googleapiclient.http import MediaIoBaseUpload

    svc = service(sim.url)
    body = b"".join(b"line %06d of a message sent in chunks\r\n" % i for i in range(24000))
    raw = (
        b"From: Ann <ann@example.org>\r\nTo: alice@example.com\r\nSubject: py resumable\r\n"
        b"Message-ID: <py-resumable-1@example.org>\r\n\r\n" + body
    )
    assert len(raw) > 3 * 256 * 1024
    before = sim.stats()["uploads"]
    media = MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822", chunksize=256 * 1024, resumable=True)
    req = svc.users().messages().import_(userId="me", body={"labelIds": ["INBOX"]}, media_body=media)
    req.uri = req.uri.replace("https://", "http://", 1)
    got, progress = None, []
    while got is None:
        status, got = req.next_chunk()
        if status:
            progress.append(status.resumable_progress)
    assert progress == [256 * 1024 * k for k in range(1, len(raw) // (256 * 1024) + 1)]
    after = sim.stats()["uploads"]
    assert after["sessions_opened"] == before["sessions_opened"] + 1
    assert after["completed"] == before["completed"] + 1
    full = svc.users().messages().get(userId="me", id=got["id"], format="raw").execute()
    assert base64.urlsafe_b64decode(full["raw"]) == raw
    assert full["labelIds"] == ["INBOX"]
