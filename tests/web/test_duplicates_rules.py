"""A rule for the copy to keep, over every pending group (GET previews, POST records the
decisions), and the groups as CSV."""
from __future__ import annotations

import csv
import io

from .conftest import assert_error, ok_json
from .test_duplicates_api import EXACT, copies, copies_client, group_of, groups  # noqa: F401


def test_a_rule_is_previewed_then_applied(copies_client, copies):
    square = copies.files["square"][0]
    larger = copies.collection / "copies" / "square-large.png"
    preview = ok_json(copies_client, "/api/duplicates/keep", rule="pixels", threshold="0.9")
    assert preview["groups"] == len(preview["plans"]) >= 1 and "decisions" not in preview
    ours = next(p for p in preview["plans"]
                if str(square) in [i["path"] for i in [p["keep"], *p["others"]]])
    assert ours["keep"]["path"] == str(larger)
    assert copies_client.get(ours["keep"]["thumbnail_url"]).status_code == 200
    assert preview["others"] == sum(len(p["others"]) for p in preview["plans"])
    assert groups(copies_client, threshold="0.9", status="reviewed")["total"] == 0

    folder = ok_json(copies_client, "/api/duplicates/keep", threshold="0.9",
                     rule=f"folder={square.parent}")
    kept = next(p for p in folder["plans"] if p["group"] == ours["group"])["keep"]["path"]
    assert kept.startswith(f"{square.parent}/")  # not the larger one in copies/

    applied = copies_client.post("/api/duplicates/keep?rule=pixels&threshold=0.9")
    assert applied.status_code == 200, applied.get_json()
    body = applied.get_json()
    assert len(body["decisions"]) == body["groups"] == preview["groups"]
    assert groups(copies_client, threshold="0.9")["total"] == 0
    reviewed = group_of(groups(copies_client, threshold="0.9", status="reviewed"), square)
    assert reviewed["images"][0]["path"] == str(larger)
    assert reviewed["decision"]["kind"] == "keep"
    again = ok_json(copies_client, "/api/duplicates/keep", rule="pixels", threshold="0.9")
    assert again["plans"] == []  # nothing pending is left


def test_bad_rules_and_cross_site_applies_are_refused(copies_client):
    for rule in ("prettiest", "format=", "folder"):
        message = assert_error(copies_client.get("/api/duplicates/keep", query_string={
            "rule": rule}), 400, "bad_parameter")
        assert "rule" in message
    assert_error(copies_client.get("/api/duplicates/keep"), 400, "bad_parameter")
    assert_error(copies_client.post("/api/duplicates/keep?rule=pixels",
                                    headers={"Origin": "https://evil.example"}), 403,
                 "cross_site")
    assert groups(copies_client, threshold=EXACT, status="reviewed")["total"] == 0


def test_groups_download_as_csv(copies_client, copies):
    response = copies_client.get("/api/duplicates/csv", query_string={"threshold": EXACT})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    circle = group_of(groups(copies_client, threshold=EXACT), copies.files["circle"][0])
    ours = [r for r in rows if r["group"] == str(circle["id"])]
    assert [int(r["image"]) for r in ours] == [i["id"] for i in circle["images"]]
    assert [int(r["bytes"]) for r in ours] == [i["bytes"] for i in circle["images"]]
    assert {r["decision"] for r in ours} == {""}
    copies_client.post("/api/duplicates/decisions", json={
        "kind": "not_duplicates", "images": [i["id"] for i in circle["images"]]})
    reviewed = copies_client.get("/api/duplicates/csv", query_string={
        "threshold": EXACT, "status": "reviewed"}).get_data(as_text=True)
    assert {r["decision"] for r in csv.DictReader(io.StringIO(reviewed))} == {"not_duplicates"}
