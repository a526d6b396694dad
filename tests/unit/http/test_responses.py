"""The HTTP error answer (one builder, two encodings) and EventStream over its sink."""

from __future__ import annotations

import pytest

from geworker.errors import LocalProtocolError
from geworker.http import EventStream, HTTPError
from geworker.http.protocol import HttpProtocol, HttpRequestError, encode_closing
from geworker.http.responses import EventSink, Response, error_response


def split(answer: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    return status, dict(line.split(b": ", 1) for line in lines), body


def test_error_response_defaults_to_the_reason_phrase_as_text():
    response = error_response(404)
    assert (response.status, response.body) == (404, b"Not Found\n")
    assert response.get_header("content-type") == "text/plain; charset=utf-8"
    detailed = error_response(418, "short and stout", [("X-A", "b")])
    assert detailed.body == b"short and stout\n" and detailed.get_header("x-a") == "b"


def test_error_response_with_a_body_adds_no_content_type():
    response = error_response(403, body=b"go away", headers=[(b"X-Why", b"policy")])
    assert response.body == b"go away" and not response.has_header("content-type")


def test_httperror_answers_with_error_response():
    exc = HTTPError(418, "short and stout", [("X-T", "1")])
    response = exc.response()
    assert (response.status, response.body, response.headers) == (
        418, b"short and stout\n", error_response(418, "short and stout", [("X-T", "1")]).headers)


def test_encode_closing_frames_the_answer_and_closes():
    status, headers, body = split(encode_closing(
        error_response(426, "no", [(b"Upgrade", b"websocket"), (b"Connection", b"keep-alive"),
                                    (b"Content-Length", b"99")])))
    assert status == b"HTTP/1.1 426 Upgrade Required"
    assert headers[b"Connection"] == b"close"  # the caller's framing headers are replaced
    assert headers[b"Content-Length"] == str(len(body)).encode() and body == b"no\n"
    assert headers[b"Upgrade"] == b"websocket" and b"Date" in headers


def test_encode_closing_refuses_injection_and_streams():
    with pytest.raises(LocalProtocolError):
        encode_closing(error_response(400, headers=[("X", "a\r\nSet-Cookie: x")]))
    with pytest.raises(LocalProtocolError):
        encode_closing(Response(iter([b"a"]), 500))


def test_refused_requests_and_protocol_errors_use_the_same_answer():
    exc = HttpRequestError(431, "too large")
    assert exc.status == 431 and split(exc.response)[2] == b"Request Header Fields Too Large\n"
    proto = HttpProtocol()
    assert split(proto.error(500))[:1] == split(encode_closing(error_response(500)))[:1]
    assert not proto.keep_alive


class ListSink:
    """An in-memory EventSink: what a stream pushed, and whether it is open."""

    def __init__(self, accept: bool = True) -> None:
        self.sent: list[bytes] = []
        self.accept = accept
        self.open = True

    @property
    def is_open(self) -> bool:
        return self.open

    def send_raw(self, data: bytes) -> bool:
        self.sent.append(data)
        return self.accept

    def close(self) -> None:
        self.open = False


def test_event_stream_queues_until_attached_then_pushes_to_its_sink():
    sink: EventSink = ListSink()
    stream = EventStream(retry=500)
    assert stream.send("early", event="e") and not stream.closed
    assert stream.attach(sink) == b"retry: 500\n\nevent: e\ndata: early\n\n"
    assert stream.send("a\nb", id="1") and stream.comment("ping")
    assert sink.sent == [b"id: 1\ndata: a\ndata: b\n\n", b": ping\n\n"]  # type: ignore[attr-defined]
    stream.close()
    assert stream.closed and not sink.is_open
    assert not stream.send("late")  # pushed, but the sink is closed: False


def test_event_stream_reports_a_full_sink():
    stream = EventStream()
    stream.attach(ListSink(accept=False))
    assert not stream.send("x") and not stream.closed
