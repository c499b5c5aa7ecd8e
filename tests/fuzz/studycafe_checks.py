"""studycafe's own schemathesis checks, loaded by scripts/fuzz-api (SCHEMATHESIS_HOOKS).

schemathesis's built-in checks already hold every answer to its operation's description
(status, content type, headers, body schema) and refuse any 5xx; these add the house rules
the description cannot say on its own.
"""

import schemathesis

PROBLEM = "application/problem+json"
# RFC 6749 §5.2: the token endpoint's own errors are plain JSON; the gateway's refusals of it
# (rate limit, unavailable, too large) are problem+json like everywhere else.
OAUTH_PATHS = {"/auth/token"}


@schemathesis.check
def errors_are_problem_json(ctx, response, case):
    """Every 4xx/5xx answer is application/problem+json with type, title, status and detail."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    content_type = (content_type[0] if isinstance(content_type, list) else content_type).split(";")[0].strip()
    if case.operation.path in OAUTH_PATHS and content_type == "application/json":
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            raise AssertionError(f"an OAuth2 error without `error`: {body!r}")
        return None
    if content_type != PROBLEM:
        raise AssertionError(f"{response.status_code} answered as {content_type!r}, not {PROBLEM}")
    body = response.json()
    missing = [k for k in ("type", "title", "status", "detail") if k not in body]
    if missing:
        raise AssertionError(f"a problem without {missing}: {body!r}")
    if body["status"] != response.status_code:
        raise AssertionError(f"problem status {body['status']} on a {response.status_code} answer")
    return None
