"""`--llm openai|anthropic`: the official clients talk over HTTP to a chat API on 127.0.0.1 (tests/helpers/
llm_server.py) that records every request and answers with scripted replies and faults."""

import json
import re
import shlex
import socket
import sys
from pathlib import Path

import pytest
from conftest import REPO, model_flags, read_json, run_cli

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from llm_server import TOO_LONG, LLMServer  # noqa: E402
from synth import progression, write_wav  # noqa: E402

from music2image.music.llm import cut_at_phrase, parse_answer  # noqa: E402
from music2image.music.writer import MAX_PROMPT_TOKENS, clip_token_count  # noqa: E402
from music2image.prompts import load_prompts  # noqa: E402

OPENAI_KEY = "sk-test-openai-5f2b9c"
ANTHROPIC_KEY = "sk-ant-test-8d1e4a"
CHAT, MESSAGES = "/v1/chat/completions", "/v1/messages"


@pytest.fixture
def server():
    with LLMServer(slow_seconds=2.0) as running:
        yield running


@pytest.fixture
def song(workdir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the clients honour proxy variables; this server is local
    write_wav(workdir / "song.wav", progression(57, "minor", 80, 6))
    return "song.wav"


def llm_flags(server: LLMServer, provider: str = "openai", *extra: str) -> list[str]:
    url = server.openai_url if provider == "openai" else server.anthropic_url
    return ["--llm", provider, "--llm-base-url", url, "--llm-model", "test-model", *extra]


def prompts_of(path) -> list[dict]:
    return read_json(path)["samples"][0]["prompts"]


def assert_no_key_anywhere(folder: Path, *texts: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert OPENAI_KEY.encode() not in data and ANTHROPIC_KEY.encode() not in data, path
    for text in texts:
        assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text


# End to end -------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_openai_sends_each_temperature_and_seed_with_features_and_schema_and_a_rerun_asks_nothing(
        server, song, workdir, capsys):
    server.reply_delay = 0.2  # long enough for the requests to overlap
    args = ["prompts", song, *llm_flags(server), "--output", "out/p.json"]
    assert run_cli(*args) == 0
    load_prompts(workdir / "out" / "p.json")  # the image stage accepts it
    document = read_json(workdir / "out" / "p.json")
    assert document["metadata"]["writer"] == "openai:test-model"
    assert document["metadata"]["llm"]["temperature_sent"] is True
    prompts = document["samples"][0]["prompts"]
    assert [(p["mode"], p["temperature"]) for p in prompts] == [("convergent", 0.4)] * 3 + [("divergent", 0.8)] * 2
    bodies = server.bodies(CHAT)
    assert len(bodies) == 1 + 5  # the probe, then one request per prompt
    assert server.max_in_flight >= 2  # several requests in flight
    for prompt in prompts:
        assert (prompt["writer"], prompt["model"], prompt["temperature_sent"]) == ("openai", "test-model", True)
        (body,) = [b for b in bodies[1:] if b["seed"] == prompt["seed"]]
        assert body["temperature"] == prompt["temperature"]  # really sent, as the prompt records
        assert body["model"] == "test-model" and body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["visual_prompt"]
        request = json.loads(body["messages"][1]["content"].split("\n", 1)[1].rsplit("\n\n", 1)[0])
        # The features that go in the file go in the request (the key finder's accuracy is test_music_features').
        assert request["musical_features"] == document["samples"][0]["musical_features"]
        assert request["suggested_descriptors"] == prompt["descriptors"]
        assert request["task"].startswith({"convergent": "Convergent", "divergent": "Divergent"}[prompt["mode"]])
        assert prompt["llm_requests"] == 1 and prompt["clip_cut"] is False
        assert 0 < prompt["token_count"] == clip_token_count(prompt["visual_prompt"]) <= MAX_PROMPT_TOKENS
    assert len({p["visual_prompt"] for p in prompts}) == 5
    assert {r["headers"]["authorization"] for r in server.requests} == {f"Bearer {OPENAI_KEY}"}
    assert (workdir / "out" / "p.llm-cache").is_dir()

    first = (workdir / "out" / "p.json").read_bytes()
    assert run_cli(*args) == 0  # a re-run: every answer from the cache
    assert len(server.requests) == 6 and (workdir / "out" / "p.json").read_bytes() == first
    assert_no_key_anywhere(workdir, *capsys.readouterr())


def test_anthropic_sends_no_temperature_says_so_and_carries_the_mode_in_the_instruction(server, song, workdir, capsys):
    args = ["prompts", song, *llm_flags(server, "anthropic"), "--output", "a.json"]
    assert run_cli(*args) == 0
    document = read_json(workdir / "a.json")
    assert document["metadata"]["llm"]["temperature_sent"] is False
    bodies = server.bodies(MESSAGES)
    assert len(bodies) == 6
    for body in bodies:
        assert "temperature" not in body and "seed" not in body and "top_p" not in body
        assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"]}
        assert body["tools"][0]["input_schema"]["required"] == ["visual_prompt"]
    for prompt in document["samples"][0]["prompts"]:
        assert (prompt["writer"], prompt["temperature_sent"], prompt["seed"]) == ("anthropic", False, None)
    tasks = sorted(json.loads(b["messages"][0]["content"].split("\n", 1)[1].rsplit("\n\n", 1)[0])["task"][:10]
                   for b in bodies[1:])
    assert tasks == ["Convergent"] * 3 + ["Divergent "] * 2
    assert {r["headers"].get("authorization") or r["headers"].get("x-api-key") for r in server.requests} <= {
        f"Bearer {ANTHROPIC_KEY}", ANTHROPIC_KEY}
    first = (workdir / "a.json").read_bytes()
    assert run_cli(*args) == 0 and len(server.requests) == 6 and (workdir / "a.json").read_bytes() == first
    assert_no_key_anywhere(workdir, *capsys.readouterr())


@pytest.mark.slow
def test_run_writes_prompts_with_the_llm_then_images(server, song, workdir, tiny_model):
    assert run_cli("run", song, *llm_flags(server), "--convergent", "1", "--divergent", "1",
                   *model_flags(tiny_model), "--width", "64", "--height", "64", "--steps", "2", "--quiet") == 0
    prompts = prompts_of(workdir / "images" / "visual_prompts.json")  # `run` keeps its prompts in its folder
    assert [p["writer"] for p in prompts] == ["openai", "openai"]
    assert sorted(p.name for p in (workdir / "images").rglob("*.png")) == [
        "sample_000_prompt_00.png", "sample_000_prompt_01.png"]
    assert (workdir / "images" / "visual_prompts.llm-cache").is_dir()


# Faults: one request at a time, so the script hits a known prompt -----------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", ["429", "500", "timeout"])
def test_rate_limits_server_errors_and_timeouts_are_retried(fault, provider, server, song, workdir):
    server.faults += ["ok", fault]  # the probe passes; the first prompt's request fails once
    args = ["prompts", song, *llm_flags(server, provider, "--llm-concurrency", "1", "--llm-timeout", "0.5"),
            "--output", "p.json"]
    assert run_cli(*args) == 0
    assert len(server.requests) == 1 + 5 + 1
    assert server.requests[2]["body"] == server.requests[1]["body"]  # the same request again
    assert server.requests[2]["headers"]["x-stainless-retry-count"] == "1"
    assert all(p["llm_requests"] == 1 for p in prompts_of(workdir / "p.json"))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_answer_that_is_not_json_is_asked_again_then_replaced_by_the_descriptors(provider, server, song, workdir):
    server.faults += ["ok", "malformed", "ok", "malformed", "malformed"]
    assert run_cli("prompts", song, *llm_flags(server, provider, "--llm-concurrency", "1"), "--output", "p.json") == 0
    first, second = prompts_of(workdir / "p.json")[:2]
    assert first["llm_requests"] == 2 and first["writer"] == provider
    assert "not the JSON object asked for" in json.dumps(server.requests[2]["body"])
    assert second["llm_requests"] == 2 and second["writer"] == "vocabulary" and second["model"] is None
    assert "not the JSON asked for, twice" in second["writer_note"]
    assert second["visual_prompt"].startswith(second["descriptors"]["subject"])


def test_a_prompt_over_75_clip_tokens_is_asked_again_with_its_count_then_cut_at_a_phrase(server, song, workdir):
    server.faults += ["ok", "too_long", "ok", "too_long", "too_long"]
    assert run_cli("prompts", song, *llm_flags(server, "openai", "--llm-concurrency", "1"), "--output", "p.json") == 0
    first, second = prompts_of(workdir / "p.json")[:2]
    count = clip_token_count(TOO_LONG)
    assert count > MAX_PROMPT_TOKENS
    assert f"is {count} CLIP tokens; the limit is 75" in server.requests[2]["body"]["messages"][1]["content"]
    assert (first["llm_requests"], first["clip_cut"]) == (2, False) and "towering" not in first["visual_prompt"]
    assert (second["llm_requests"], second["clip_cut"]) == (2, True)
    assert second["token_count"] <= MAX_PROMPT_TOKENS and TOO_LONG.startswith(second["visual_prompt"] + ",")


def test_a_duplicate_within_a_sample_is_asked_again(server, song, workdir):
    server.faults += ["ok", "ok", "duplicate"]  # prompt 1 repeats prompt 0
    assert run_cli("prompts", song, *llm_flags(server, "openai", "--llm-concurrency", "1"), "--output", "p.json") == 0
    prompts = prompts_of(workdir / "p.json")
    assert len({p["visual_prompt"] for p in prompts}) == 5
    assert prompts[1]["llm_requests"] == 2
    reask = server.requests[-1]["body"]["messages"][1]["content"]
    assert "repeated another prompt" in reask and prompts[0]["visual_prompt"] in reask


def test_a_service_that_fails_mid_run_stops_with_exit_1_and_the_rerun_resumes(server, song, workdir, capsys):
    server.faults += ["ok", "ok"] + ["500"] * 4  # the second prompt fails on every retry (3)
    args = ["prompts", song, *llm_flags(server, "openai", "--llm-concurrency", "1"), "--output", "out/p.json"]
    assert run_cli(*args) == 1
    assert "HTTP 500" in capsys.readouterr().err and not (workdir / "out" / "p.json").exists()
    asked = len(server.requests)  # the probe, prompt 0, 4 tries of prompt 1, and prompt 2 if it had started
    answered = [json.dumps(r["body"]) for r in server.requests[:2] + server.requests[6:asked]]
    assert run_cli(*args) == 0
    again = [json.dumps(r["body"]) for r in server.requests[asked:]]
    assert len(again) == 6 - len(answered) and not set(again) & set(answered)  # nothing answered is asked twice


def test_a_broken_cache_entry_is_asked_again(server, song, workdir, capsys):
    args = ["prompts", song, *llm_flags(server), "--output", "p.json"]
    assert run_cli(*args) == 0
    entry = sorted((workdir / "p.llm-cache").rglob("*.json"))[0]
    entry.write_text("{not json")
    assert run_cli(*args) == 0 and len(server.requests) == 7
    assert "unreadable LLM cache entry" in capsys.readouterr().err


def test_a_cache_folder_planted_as_a_link_receives_no_answer(server, song, workdir, capsys):
    args = ["prompts", song, *llm_flags(server), "--output", "p.json"]
    assert run_cli(*args) == 0
    entry = min((workdir / "p.llm-cache").rglob("*.json"))
    (workdir / "elsewhere").mkdir()
    entry.unlink()
    entry.parent.rmdir()
    entry.parent.symlink_to(workdir / "elsewhere")  # p.llm-cache/ab -> elsewhere: the answer was written there
    assert run_cli(*args, "--overwrite") == 1
    assert "never writes through links" in capsys.readouterr().err
    assert not any((workdir / "elsewhere").iterdir())


# Exit 2, before any audio is analysed and with nothing written --------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("case", ["401", "404", "unreachable", "no-key", "no-model", "model-without-llm",
                                  "too-hot", "both-writers", "bad-url", "no-client"])
def test_setup_problems_are_one_message_exit_2_and_nothing_written(case, server, song, workdir, capsys, monkeypatch):
    flags = llm_flags(server, "anthropic" if case == "404" else "openai")
    if case in ("401", "404"):
        server.faults += [case]
    if case == "unreachable":
        flags = ["--llm", "openai", "--llm-base-url", f"http://127.0.0.1:{_closed_port()}/v1", "--llm-model", "m"]
    if case == "no-key":
        monkeypatch.delenv("OPENAI_API_KEY")
        flags = ["--llm", "openai", "--llm-model", "gpt-4o-mini"]  # the real API: a key is required
    if case == "no-client":
        monkeypatch.setitem(sys.modules, "openai", None)  # as if `music2image[llm]` were not installed
    flags = {"no-model": ["--llm", "openai"], "model-without-llm": ["--llm-model", "x"],
             "too-hot": [*flags, "--divergent-temperature", "2.5"], "both-writers": [*flags, "--text-model", "d"],
             "bad-url": ["--llm", "openai", "--llm-model", "m", "--llm-base-url", "ftp://x"]}.get(case, flags)
    assert run_cli("prompts", song, *flags, "--output", "out/p.json") == 2
    err = capsys.readouterr().err
    assert err.startswith("music2image: error:") and "Traceback" not in err
    expected = {"401": "refused the key in OPENAI_API_KEY (401)", "404": "--llm-model test-model: not found at",
                "unreachable": "cannot connect", "no-key": "set OPENAI_API_KEY", "no-model": "needs --llm-model",
                "model-without-llm": "--llm-model needs --llm openai", "too-hot": "from 0 to 2, got 2.5",
                "both-writers": "give one", "bad-url": "must be an http(s) URL",
                "no-client": "pip install 'music2image[llm]'"}[case]
    assert expected in err
    assert not (workdir / "out").exists()
    assert_no_key_anywhere(workdir, err)


def test_a_local_server_without_auth_works_without_a_key_and_a_401_says_to_set_one(server, song, workdir, capsys,
                                                                                 monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    assert run_cli("prompts", song, *llm_flags(server), "--output", "p.json") == 0
    server.faults += ["401"]
    assert run_cli("prompts", song, *llm_flags(server), "--output", "q.json", "--seed", "1") == 2
    assert "wants a key (401) and OPENAI_API_KEY is not set" in capsys.readouterr().err


# Pieces ----------------------------------------------------------------------------------------------------------
def test_cut_at_phrase_keeps_whole_phrases_within_75_tokens():
    cut = cut_at_phrase(TOO_LONG)
    assert clip_token_count(cut) <= MAX_PROMPT_TOKENS and TOO_LONG.startswith(cut + ",")
    assert clip_token_count(cut_at_phrase("word " * 200)) <= MAX_PROMPT_TOKENS  # one endless phrase: whole words


@pytest.mark.parametrize("answer, text", [('{"visual_prompt": " a red\\nfox "}', "a red fox"),
                                          ('{"visual_prompt": "a\\u0007b"}', "a b"), ('{"visual_prompt": ""}', None),
                                          ('["a"]', None), ("not json", None), ('{"other": "x"}', None)])
def test_parse_answer_takes_one_clean_line_or_nothing(answer, text):
    assert parse_answer(answer) == text


def test_readme_llm_commands_work_against_a_local_server(server, song, workdir, monkeypatch):
    text = (REPO / "README.md").read_text()
    lines = [line.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()
             if line.strip().startswith("music2image") and "--llm " in line]
    assert {shlex.split(line)[shlex.split(line).index("--llm") + 1] for line in lines} == {"openai", "anthropic"}
    (workdir / "music").mkdir()
    write_wav(workdir / "music" / "a.wav", progression(60, "major", 120, 4))
    for line in lines:
        argv = shlex.split(line)[1:]
        provider = argv[argv.index("--llm") + 1]
        url = server.openai_url if provider == "openai" else server.anthropic_url
        if "--llm-base-url" in argv:
            argv[argv.index("--llm-base-url") + 1] = url
        else:
            argv += ["--llm-base-url", url]
        assert run_cli(*argv, "--overwrite") == 0, line


def test_a_model_that_repeats_itself_gets_the_descriptors_then_the_sample_is_skipped(server, song, workdir):
    server.reply = lambda body: "the same prompt every time"
    args = ["prompts", song, *llm_flags(server, "openai", "--llm-concurrency", "1"), "--convergent", "3",
            "--divergent", "0", "--convergent-temperature", "0", "--output", "p.json"]
    assert run_cli(*args) == 1  # its only sample skipped
    (sample,) = read_json(workdir / "p.json")["samples"]
    assert "same prompt twice after 2 re-asks (prompt_id 2)" in sample["error"] and sample["prompts"] == []
    assert len(server.requests) == 1 + 3 + 2 + 2  # the probe, the prompts, two re-asks for each repeat


def test_an_answer_nested_100000_deep_is_an_unusable_answer_not_a_traceback(server, song, workdir, capsys):
    server.faults += ["ok", "deep", "deep"]  # json.loads raised RecursionError, which is no ValueError
    assert run_cli("prompts", song, *llm_flags(server, "openai", "--llm-concurrency", "1"), "--output", "p.json") == 0
    first = prompts_of(workdir / "p.json")[0]
    assert first["writer"] == "vocabulary" and "not the JSON asked for, twice" in first["writer_note"]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", ["html", "nested_body"])
def test_a_server_that_answers_no_chat_api_response_is_one_message(fault, provider, server, song, workdir, capsys):
    # The clients build responses without validating them: a web page raised JSONDecodeError, a body nested
    # 100,000 deep RecursionError, both as tracebacks. At the probe: exit 2, nothing written; mid-run: exit 1.
    server.faults += [fault]
    assert run_cli("prompts", song, *llm_flags(server, provider), "--output", "out/p.json") == 2
    err = capsys.readouterr().err
    assert "answered with something that is not a" in err and "check --llm-base-url" in err
    assert "Traceback" not in err and not (workdir / "out").exists()
    server.faults += ["ok", fault]
    assert run_cli("prompts", song, *llm_flags(server, provider, "--llm-concurrency", "1"), "--output", "p.json") == 1
    assert "answered with something that is not a" in capsys.readouterr().err


def test_ctrl_c_stops_at_once_with_requests_in_flight(server, song, workdir):
    import os
    import signal
    import subprocess
    import time

    server.slow_seconds = 30  # every request after the probe hangs: --llm-timeout 20, three retries each
    server.faults += ["ok"] + ["timeout"] * 20
    command = [sys.executable, "-m", "music2image", "prompts", song,
               *llm_flags(server, "openai", "--llm-timeout", "20"), "--output", "p.json"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while len(server.requests) < 3:  # the probe, then prompts in flight
            assert process.poll() is None
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        # A thread pool's workers are joined at exit: it waited minutes for the requests in flight.
        _, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not (workdir / "p.json").exists()


def test_llm_tuning_flags_without_llm_are_refused_not_ignored(song, workdir, capsys):
    """--llm-timeout and --llm-concurrency were accepted, and silently did nothing, without --llm."""
    assert run_cli("prompts", song, "--llm-timeout", "5", "--llm-concurrency", "8", "--output", "out/p.json") == 2
    err = capsys.readouterr().err
    assert "--llm-timeout and --llm-concurrency need --llm openai or --llm anthropic" in err
    assert not (workdir / "out").exists()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_lone_surrogate_in_an_answer_is_no_traceback_and_a_rerun_writes_the_same_bytes(provider, server, song,
                                                                                         workdir, capsys):
    """The clients parse the server's JSON, which may escape half a surrogate pair: the Anthropic route's answer
    (the tool input, serialised again) then held a character with no UTF-8, and caching it raised
    UnicodeEncodeError, a traceback."""
    server.reply = lambda body: "a red \ud800 fox at dusk"
    args = ["prompts", song, *llm_flags(server, provider, "--llm-concurrency", "1"), "--output", "p.json"]
    assert run_cli(*args) == 0
    assert "Traceback" not in capsys.readouterr().err
    first = (workdir / "p.json").read_bytes()
    asked = len(server.requests)
    assert run_cli(*args) == 0 and len(server.requests) == asked  # from the cache, the same prompts
    assert (workdir / "p.json").read_bytes() == first
