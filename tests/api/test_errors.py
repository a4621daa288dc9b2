"""Errors leave as application/problem+json with a request id; never a bare 500."""

from __future__ import annotations


async def test_unknown_path_is_a_404_problem_with_the_request_id(http):
    response = await http.get("/no/such/page", headers={"x-request-id": "trace-0001"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank#not_found",
        "title": "Not found",
        "status": 404,
        "detail": "Not Found",
        "code": "not_found",
        "instance": "/no/such/page",
        "request_id": "trace-0001",
    }


async def test_wrong_method_is_a_405_problem(http):
    response = await http.post("/health")
    assert response.status_code == 405
    body = response.json()
    assert (body["status"], body["code"], body["title"]) == (
        405,
        "method_not_allowed",
        "Method not allowed",
    )
    assert response.headers["content-type"] == "application/problem+json"
    assert "GET" in response.headers["allow"]


async def test_openapi_document_is_served(http):
    response = await http.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "infusion"
    assert document["paths"]["/health"]["get"]["operationId"] == "getHealth"


async def test_api_docs_ui_loads_its_files_from_this_server_only(http):
    page = await http.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "/static/vendor/swagger-ui-bundle.js?v=" in html
    assert "/static/vendor/swagger-ui.css?v=" in html
    assert "cdn." not in html
    assert "unpkg" not in html
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        asset = await http.get(f"/static/vendor/{name}")
        assert asset.status_code == 200, name
        assert len(asset.content) > 10_000, name


async def test_an_id_past_the_database_range_is_a_400_not_a_500(http):
    from tests.api.test_auth_support import logged_in_client, make_user

    await make_user("auditor", "pharmacist")
    client = await logged_in_client(str(http.base_url), "auditor")
    try:
        too_big = await client.get("/api/audit/events", params={"before_seq": 2**63})
        assert too_big.status_code == 400
        assert too_big.headers["content-type"] == "application/problem+json"
        assert too_big.json()["code"] == "invalid_request"
        # A NUL character reaches PostgreSQL, which cannot store it: 400, and the value is
        # not echoed back (it could be patient data).
        nul = await client.get("/api/audit/events", params={"subject_id": "a\x00b"})
        assert nul.status_code == 400
        assert nul.json()["code"] == "invalid_value"
        assert nul.json()["detail"] == (
            "A value in the request is out of range or contains characters that cannot be stored."
        )
    finally:
        await client.aclose()
