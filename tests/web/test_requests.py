"""One way to read a request (``web.requests``): the query string, a form and a JSON body
merged into one mapping and validated by the endpoint's one model; the document made from
that model; and answers that their models check when they are built.

An app of one echo route stands in for the API, so every rule is seen without a model.
"""
from __future__ import annotations

import io

import pytest
from flask import Flask, jsonify
from pydantic import Field, ValidationError

from web.answers import Health, answer
from web.apispec import openapi_document, operation
from web.errors import ApiError, register_error_handlers
from web.fields import Flag, whole
from web.requests import Params, Upload
from web.uploads import InMemoryRequest

from .conftest import assert_error


class EchoParams(Upload):
    k: whole(1, 100) = Field(10, description="How many.")
    loud: Flag = Field(False, description="Shout.")


class PairParams(Params):
    a: whole(0, 9) = Field(description="The first.")
    b: whole(0, 9) = Field(3, description="The second.")


def make_echo_app() -> Flask:
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # as web.app.create_app
    register_error_handlers(app)

    @app.post("/api/echo")
    @operation(EchoParams, answers={200: (None, "What was read.")})
    def echo(params: EchoParams):
        """Say what was read."""
        return jsonify(k=params.k, loud=params.loud, image=params.image.decode())

    @app.get("/api/pair")
    @operation(PairParams, answers={200: (None, "The pair.")})
    def pair(params: PairParams):
        """Say the pair."""
        return jsonify(a=params.a, b=params.b)

    @app.get("/api/strange")
    @operation(answers={200: (Health, "Never.")})
    def strange():
        """An answer with a field its model does not name."""
        return answer(Health(status="ok", ready=True, surprise=1))

    @app.get("/api/teapot")
    @operation(answers={418: "Never."})
    def teapot():
        """An error with a code the document does not list."""
        raise ApiError(418, "teapot", "short and stout")

    return app


@pytest.fixture
def echo():
    return make_echo_app().test_client()


def form(client, query: str = "", **fields):
    return client.post(f"/api/echo{query}", content_type="multipart/form-data",
                       data={"image": (io.BytesIO(b"IMG"), "x.png"), **fields})


def json_body(client, query: str = "", **fields):
    return client.post(f"/api/echo{query}", json={"image_base64": "SU1H", **fields})


# -- one mapping --------------------------------------------------------------------------------

def test_a_value_reads_the_same_from_query_form_and_json(echo):
    assert form(echo, "?k=7&loud=yes").get_json() == {"k": 7, "loud": True, "image": "IMG"}
    assert form(echo, k="7", loud="on").get_json() == {"k": 7, "loud": True, "image": "IMG"}
    assert json_body(echo, k=7, loud=True).get_json() == {"k": 7, "loud": True, "image": "IMG"}
    assert json_body(echo, k=7.0).get_json()["k"] == 7  # JSON Schema's integer


def test_an_empty_value_means_absent_and_null_too(echo):
    assert form(echo, "?k=&loud=").get_json() == {"k": 10, "loud": False, "image": "IMG"}
    assert form(echo, "?k=4", k="").get_json()["k"] == 4  # an empty field leaves the query's
    assert json_body(echo, "?k=4", k=None).get_json()["k"] == 4


def test_the_body_wins_over_the_query(echo):
    assert form(echo, "?k=3", k="5").get_json()["k"] == 5
    assert json_body(echo, "?k=3&loud=true", k=5, loud=False).get_json() == {
        "k": 5, "loud": False, "image": "IMG"}
    # A replaced query value is still checked: a bad one is the client's mistake.
    assert "k" in assert_error(form(echo, "?k=abc", k="5"), 400, "bad_parameter")
    assert "k" in assert_error(json_body(echo, "?k=0", k=5), 400, "bad_parameter")


@pytest.mark.parametrize("k", ["7", "true"])
def test_a_string_where_json_wants_a_number_is_bad_parameter(echo, k):
    message = assert_error(json_body(echo, k=k), 400, "bad_parameter")
    assert message.startswith("k in a JSON body must be a JSON number")
    assert form(echo, k="7").get_json()["k"] == 7  # the same text in a form is fine


@pytest.mark.parametrize("send", [
    lambda c: form(c, "?k=101"), lambda c: form(c, k="0"), lambda c: json_body(c, k=2.5),
    lambda c: json_body(c, loud=1), lambda c: form(c, loud="maybe")])
def test_every_bad_value_names_its_parameter_and_range(echo, send):
    message = assert_error(send(echo), 400, "bad_parameter")
    assert message.startswith(("k must be", "loud must be"))


def test_a_body_of_the_wrong_shape_is_bad_request_before_any_parameter(echo):
    assert_error(echo.post("/api/echo?k=0", json=[1, 2]), 400, "bad_request")
    assert_error(echo.post("/api/echo?k=0", json={"image_base64": 5}), 400, "bad_request")
    assert_error(echo.post("/api/echo?k=0", json={"image_base64": "!!"}), 400, "bad_request")
    assert_error(echo.post("/api/echo?k=0", content_type="multipart/form-data",
                           data={"k": "5"}), 400, "bad_request")
    assert_error(echo.post("/api/echo", data="k=5", content_type="text/plain"), 415,
                 "unsupported_media_type")


def test_a_required_parameter_is_named_when_absent_or_empty(echo):
    assert echo.get("/api/pair?a=1").get_json() == {"a": 1, "b": 3}
    for query in ("", "?a=", "?b=2"):
        message = assert_error(echo.get(f"/api/pair{query}"), 400, "bad_parameter")
        assert message == "a is required: The first."


# -- the document of the same models -----------------------------------------------------------

def test_a_parameter_is_documented_in_the_query_the_form_and_json():
    doc = openapi_document(make_echo_app())
    operation_ = doc["paths"]["/api/echo"]["post"]
    query = {p["name"]: p for p in operation_["parameters"]}
    assert query["k"]["schema"]["maximum"] == 100 and query["k"]["allowEmptyValue"]
    schemas = doc["components"]["schemas"]
    assert schemas["EchoForm"]["properties"]["k"]["anyOf"][1] == {"const": ""}
    assert schemas["EchoJson"]["properties"]["k"]["anyOf"][1] == {"type": "null"}
    assert schemas["EchoForm"]["required"] == ["image"]
    assert "image" not in query  # the upload is the body's, never a parameter
    pair = {p["name"]: p for p in doc["paths"]["/api/pair"]["get"]["parameters"]}
    assert pair["a"]["required"] and "allowEmptyValue" not in pair["a"]


# -- answers -------------------------------------------------------------------------------------

def test_an_answer_with_a_field_its_model_does_not_name_is_refused(echo):
    with pytest.raises(ValidationError):
        Health(status="ok", ready=True, surprise=1)
    assert_error(echo.get("/api/strange"), 500, "internal_error")


def test_an_error_code_the_document_does_not_list_is_refused(echo):
    assert_error(echo.get("/api/teapot"), 500, "internal_error")


def test_an_answer_is_checked_strictly_and_keeps_the_models_order():
    with pytest.raises(ValidationError):
        Health(status="ok", ready="yes")  # no coercion: a string is not a flag
    with make_echo_app().test_request_context():
        response, status = answer(Health(message=None, ready=False, status="ok"))
    assert status == 200
    assert response.get_data(as_text=True).replace(" ", "").strip() == \
        '{"status":"ok","ready":false,"message":null}'
