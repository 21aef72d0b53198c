"""The stage: verdicts stored once per (image, prompt, backend, model), decisions, errors, reruns, secrets."""
import json
import logging

import pytest
from django.core.serializers import serialize

from curation import runs
from curation.models import AutoStage, Image, Run
from tests.fakes.vlm_common import verdict_for
from tests.vlm.conftest import OLLAMA_KEY, OPENAI_KEY
from vlm import judge, model_input
from vlm.judge import errors_path, judge_images
from vlm.models import VlmVerdict
from vlm.normalise import final_decision, split_tags


def run_stage(images, version, backend="openai", model="gpt-4.1", **kw):
    kw.setdefault("workers", 4)
    ids = [i.pk if hasattr(i, "pk") else i for i in images]
    return runs.run_in_foreground(
        Run.Kind.VLM, lambda t: judge_images(t, image_ids=ids, prompt_version_id=version.pk, backend=backend,
                                             model=model, **kw), {"test": True})


def expected(image, min_score=0.6):
    """What the fake says about a stored image (it sees our downscaled JPEG, so ask it the same way)."""
    with image.file.storage.open(image.file.name, "rb") as fh:
        jpeg, _ = model_input.prepare_image(fh.read())
    v = verdict_for(jpeg)
    return v, final_decision(v["decision"], v["score"], min_score)


def test_verdicts_decisions_cost_and_run_totals(db, prompts, openai_fake, make_images):
    images = make_images(10)
    run = run_stage(images, prompts["v3"])
    assert run.status == Run.Status.DONE
    rows = {v.image_id: v for v in VlmVerdict.objects.all()}
    assert len(rows) == 10 and len(openai_fake.requests) == 10
    kept = 0
    for image in Image.objects.all():
        model_verdict, decision = expected(image)
        v = rows[image.pk]
        assert (v.decision, v.score, v.reason, v.tags) == (model_verdict["decision"], model_verdict["score"],
                                                            model_verdict["reason"], model_verdict["tags"])
        assert v.error == "" and v.run_id == run.pk and v.latency_ms is not None and v.raw_response
        assert v.cost_usd == pytest.approx((v.input_tokens * 2.0 + v.output_tokens * 8.0) / 1e6)
        assert image.auto_decision == decision == image.final_decision
        assert image.vlm_score == v.score and image.auto_reason.startswith("VLM v3 gpt-4.1 score")
        kept += decision == "keep"
    c = run.counters
    assert (c["kept"], c["rejected"], c.get("error", 0)) == (kept, 10 - kept, 0)
    assert c["input_tokens"] == sum(v.input_tokens for v in rows.values())
    assert c["output_tokens"] == sum(v.output_tokens for v in rows.values())
    assert c["cost_usd"] == pytest.approx(sum(v.cost_usd for v in rows.values()))
    assert run.total == 10


def test_min_score_turns_a_weak_keep_into_reject(db, prompts, openai_fake, make_images):
    images = make_images(12)
    run_stage(images, prompts["v3"], min_score=1.0)
    assert set(Image.objects.values_list("auto_decision", flat=True)) == {"reject"}
    assert VlmVerdict.objects.filter(decision="keep").exists()  # the model's own word is kept


def test_a_human_decision_is_never_overwritten(db, prompts, openai_fake, make_images):
    images = make_images(8)
    Image.objects.filter(pk__in=[i.pk for i in images]).update(human_decision="reject", final_decision="reject")
    run_stage(images, prompts["v3"], min_score=0.0)
    for image in Image.objects.all():
        assert image.human_decision == "reject" and image.final_decision == "reject"
        assert image.auto_decision == expected(image, 0.0)[1]


def test_only_the_active_prompt_drives_decisions(db, prompts, openai_fake, make_images, settings):
    images = make_images(4)
    run_stage(images, prompts["v1"])  # v3 is active
    assert VlmVerdict.objects.filter(prompt_version=prompts["v1"]).count() == 4
    assert set(Image.objects.values_list("auto_decision", flat=True)) == {None}
    settings.SCENEIMG_VLM_PROMPT = "v1"
    run_stage(images, prompts["v1"], model="gpt-4.1-mini")
    assert None not in set(Image.objects.values_list("auto_decision", flat=True))


def test_invalid_decision_is_read_as_reject_with_its_raw_response_kept(db, prompts, openai_fake, make_images):
    openai_fake.mode = "invalid_decision"
    images = make_images(3)
    run = run_stage(images, prompts["v3"])
    for v in VlmVerdict.objects.all():
        assert v.decision == "reject" and v.error == "" and "maybe" in v.raw_response
    assert set(Image.objects.values_list("auto_decision", flat=True)) == {"reject"}
    assert run.counters["rejected"] == 3 and run.status == Run.Status.DONE


def test_a_reply_without_json_is_an_error_row_with_its_raw_response(db, prompts, openai_fake, make_images):
    openai_fake.mode = "nul_garbage"
    images = make_images(3)
    Image.objects.filter(pk=images[0].pk).update(auto_decision="keep", final_decision="keep")
    run = run_stage(images, prompts["v3"])
    for v in VlmVerdict.objects.all():
        assert v.decision is None and v.score is None
        assert "no JSON object" in v.error and "judge" in v.raw_response
    assert Image.objects.get(pk=images[0].pk).auto_decision == "keep"  # an error changes no decision
    assert run.counters["error"] == 3 and "3 image(s) failed" in run.error and run.status == Run.Status.DONE


def test_same_image_twice_in_the_input_is_judged_once(db, prompts, openai_fake, make_images):
    images = make_images(3)
    run = run_stage(images + images[:2], prompts["v3"])
    assert len(openai_fake.requests) == 3 and VlmVerdict.objects.count() == 3 and run.total == 3


def test_random_faults_every_image_verdicted_or_in_errors_once_then_rerun_fills_only_the_gaps(
        db, prompts, openai_fake, make_images, tmp_path, settings):
    settings.SCENEIMG_VLM_RETRIES = 1
    settings.SCENEIMG_VLM_TIMEOUT = 0.3
    openai_fake.slow_seconds = 0.6
    openai_fake.faults = {"server_error": 0.12, "rate_limit": 0.1, "reset": 0.06, "slow": 0.03,
                          "nul_garbage": 0.05, "fenced": 0.1, "prose": 0.1, "score_high": 0.05}
    openai_fake.retry_after = 0
    images = make_images(200)
    ids = [i.pk for i in images]
    output = tmp_path / "out" / "verdicts.jsonl"
    outputs = {"output": str(output), "ids": ids, "names": {}, "errors": []}

    run1 = run_stage(images, prompts["v3"], workers=16, outputs=outputs, seed=5)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    errors = json.loads(errors_path(output).read_text())
    verdicted = [line["image_id"] for line in lines]
    failed = [e["image_id"] for e in errors["details"]]
    assert errors["count"] == len(failed) and set(errors["errors"]) == {str(i) for i in failed}
    assert errors_path(output).name == "verdicts.errors.json"
    assert len(verdicted) == len(set(verdicted)) and len(failed) == len(set(failed))
    assert sorted(verdicted + failed) == sorted(ids)  # every image exactly once across the two files
    assert failed, "the fault mix should leave some failures"
    assert VlmVerdict.objects.count() == 200
    assert set(VlmVerdict.objects.exclude(error="").values_list("image_id", flat=True)) == set(failed)
    assert run1.counters["kept"] + run1.counters["rejected"] == len(verdicted)
    assert run1.counters["error"] == len(failed)

    before = {v.image_id: (v.updated_at, v.score) for v in VlmVerdict.objects.filter(error="")}
    openai_fake.faults, openai_fake.mode = {}, "valid"
    openai_fake.requests.clear()
    run2 = run_stage(images, prompts["v3"], workers=16, outputs=outputs)
    asked = {r["image_sha"] for r in openai_fake.requests}
    assert len(openai_fake.requests) == len(failed) == len(asked)  # only the gaps were asked again
    assert run2.counters["skipped"] == len(verdicted) and run2.counters.get("error", 0) == 0
    after = {v.image_id: (v.updated_at, v.score) for v in VlmVerdict.objects.filter(image_id__in=before)}
    assert after == before  # earlier verdicts untouched
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(line["image_id"] for line in lines) == sorted(ids)
    assert json.loads(errors_path(output).read_text())["count"] == 0
    assert VlmVerdict.objects.count() == 200 and not VlmVerdict.objects.exclude(error="").exists()


def test_keep_and_reject_dirs_receive_copies(db, prompts, openai_fake, make_images, tmp_path):
    images = make_images(6)
    ids = [i.pk for i in images]
    outputs = {"keep_dir": str(tmp_path / "keep"), "reject_dir": str(tmp_path / "reject"), "ids": ids,
               "names": {str(ids[0]): "kitchen_001.jpg"}, "errors": []}
    run_stage(images, prompts["v3"], outputs=outputs)
    kept = {i.pk for i in Image.objects.filter(auto_decision="keep")}
    names_keep = {p.name for p in (tmp_path / "keep").iterdir()}
    names_reject = {p.name for p in (tmp_path / "reject").iterdir()}
    assert len(names_keep) == len(kept) and len(names_reject) == 6 - len(kept)
    first = "kitchen_001.jpg"
    assert first in (names_keep if ids[0] in kept else names_reject)
    some = Image.objects.exclude(pk=ids[0]).first()
    copied = (tmp_path / ("keep" if some.pk in kept else "reject") / f"{some.sha256}.jpg")
    assert copied.read_bytes() == some.file.storage.open(some.file.name).read()


@pytest.mark.parametrize("backend, model", [("ollama-local", "llava:latest"), ("ollama-cloud", "qwen2.5vl:7b")])
def test_ollama_backends_store_verdicts_without_cost_for_unpriced_models(db, prompts, ollama_fake, ollama_cloud_fake,
                                                                          make_images, backend, model):
    images = make_images(5)
    run = run_stage(images, prompts["v3"], backend=backend, model=model)
    fake = ollama_fake if backend == "ollama-local" else ollama_cloud_fake
    other = ollama_cloud_fake if backend == "ollama-local" else ollama_fake
    assert len(fake.requests) == 5 and not other.requests
    rows = VlmVerdict.objects.filter(backend=backend, model=model)
    assert rows.count() == 5 and not rows.exclude(error="").exists()
    expected_cost = 0.0 if backend == "ollama-local" else None
    assert set(rows.values_list("cost_usd", flat=True)) == {expected_cost}
    assert run.counters["input_tokens"] > 0


def test_the_api_keys_appear_nowhere(db, prompts, openai_fake, ollama_cloud_fake, make_images, tmp_path, caplog):
    """Not in logs, errors, raw responses, output files or any database row, even from a leaky upstream."""
    caplog.set_level(logging.DEBUG)  # the clients' debug logs too
    images = make_images(6)
    ids = [i.pk for i in images]
    output = tmp_path / "v.jsonl"
    outputs = {"output": str(output), "ids": ids, "names": {}, "errors": []}
    openai_fake.script = ["echo_auth"] * 6  # the first image(s) fail for good, retries logged
    ollama_cloud_fake.script = ["echo_auth"] * 6
    run_stage(images, prompts["v3"], outputs=outputs, workers=1)
    run_stage(images, prompts["v3"], backend="ollama-cloud", model="m", outputs=outputs, workers=1)

    assert all(r["auth"] == f"Bearer {OPENAI_KEY}" for r in openai_fake.requests)  # it was really sent
    assert all(r["auth"] == f"Bearer {OLLAMA_KEY}" for r in ollama_cloud_fake.requests)
    assert VlmVerdict.objects.exclude(error="").count() == 4  # 2 images per backend after 3 attempts each
    dumps = {
        "logs": caplog.text, "output": output.read_text(), "errors": errors_path(output).read_text(),
        "verdicts": serialize("json", VlmVerdict.objects.all()), "runs": serialize("json", Run.objects.all()),
        "images": serialize("json", Image.objects.all()),
    }
    for where in ("logs", "errors", "verdicts", "runs"):
        assert "Bearer [redacted]" in dumps[where], where  # the leak path was exercised
    for where, text in dumps.items():
        assert OPENAI_KEY not in text and OLLAMA_KEY not in text, where


def test_rerun_with_another_min_score_reapplies_existing_verdicts_without_asking(db, prompts, openai_fake,
                                                                                 make_images):
    images = make_images(10)
    run_stage(images, prompts["v3"], min_score=0.0)
    keeps = VlmVerdict.objects.filter(decision="keep").count()
    assert Image.objects.filter(auto_decision="keep").count() == keeps > 0
    openai_fake.requests.clear()
    run_stage(images, prompts["v3"], min_score=1.0)
    assert not openai_fake.requests
    assert set(Image.objects.values_list("auto_decision", flat=True)) == {"reject"}


def test_unpriced_model_is_counted_not_costed(db, prompts, openai_fake, make_images):
    run = run_stage(make_images(3), prompts["v3"], model="brand-new-model")
    assert set(VlmVerdict.objects.values_list("cost_usd", flat=True)) == {None}
    assert run.counters["unpriced_verdicts"] == 3 and run.counters["cost_usd"] == 0


def test_cancelling_stops_early_keeps_what_came_back_and_a_rerun_finishes(db, prompts, openai_fake, make_images):
    openai_fake.latency = 0.05
    images = make_images(40)
    run = runs.create_run(Run.Kind.VLM, {})

    class CancelSoon(runs.Tracker):
        checks = 0

        def check_cancelled(self):
            self.checks += 1
            if self.checks == 2:
                raise runs.Cancelled()

    with pytest.raises(runs.Cancelled):
        judge_images(CancelSoon(run), image_ids=[i.pk for i in images], prompt_version_id=prompts["v3"].pk,
                     backend="openai", model="gpt-4.1", workers=2)
    done = VlmVerdict.objects.count()
    assert 0 < done < 40
    assert done == len(openai_fake.requests)  # every call that went out was written; nothing else ran
    assert not VlmVerdict.objects.exclude(error="").exists()
    run2 = run_stage(images, prompts["v3"], workers=8)
    assert run2.counters["skipped"] == done and len(openai_fake.requests) == 40
    assert VlmVerdict.objects.filter(error="").count() == 40


def test_an_image_deleted_after_selection_is_listed_once_in_errors(db, prompts, openai_fake, make_images, tmp_path):
    images = make_images(3)
    ids = [i.pk for i in images]
    Image.objects.filter(pk=ids[1]).delete()
    output = tmp_path / "o.jsonl"
    run = run_stage(ids, prompts["v3"], outputs={"output": str(output), "ids": ids, "names": {}, "errors": []})
    assert json.loads(errors_path(output).read_text()) == {
        "count": 1, "errors": {str(ids[1]): "no verdict: image deleted"},
        "details": [{"id": str(ids[1]), "image_id": ids[1], "path": "", "error": "no verdict: image deleted"}]}
    assert len(output.read_text().splitlines()) == 2 and run.counters["error"] == 1


def test_nul_characters_in_replies_do_not_fail_the_batch(db, prompts, openai_fake, make_images):
    # Postgres refuses text and jsonb containing NUL; one such reply used to fail the write of its whole batch.
    images = make_images(6)
    openai_fake.script = ["nul", "nul_garbage", "nul"]
    run = run_stage(images, prompts["v3"], workers=1)
    assert run.status == Run.Status.DONE
    rows = list(VlmVerdict.objects.all())
    assert len(rows) == 6
    errors = [v for v in rows if v.error]
    assert len(errors) == 1 and "no JSON object" in errors[0].error
    cleaned = [v for v in rows if v.reason == "Lived-in kitchen"]
    assert len(cleaned) == 2 and all(v.tags == ["kitchen", "mug"] for v in cleaned)
    for v in rows:
        assert "\x00" not in v.reason + v.error + v.raw_response + "".join(v.tags)
    assert run.counters["kept"] + run.counters["rejected"] == 5 and run.counters["error"] == 1


def test_a_failed_write_keeps_the_batch_for_the_next_flush(db, prompts, make_images, monkeypatch):
    from django.db import OperationalError

    from vlm.judge import Outcome, _Writer

    image = make_images(1)[0]
    writer = _Writer(runs.Tracker(), prompts["v3"], "openai", "gpt-4.1", 0.6, True, None)
    writer.add(Outcome(image.pk, decision="keep", score=0.9, reason="ok"))
    real = judge._upsert
    calls = []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("connection lost")
        return real(*args, **kw)

    monkeypatch.setattr(judge, "_upsert", flaky)
    with pytest.raises(OperationalError):
        writer.flush()
    assert len(writer.buffer) == 1 and not VlmVerdict.objects.exists()
    writer.flush()
    assert writer.buffer == [] and VlmVerdict.objects.get().decision == "keep"
    assert Image.objects.get(pk=image.pk).auto_decision == "keep"


@pytest.mark.parametrize("reason,stage", [("copy of seed seed-a.jpg", AutoStage.SEED_COPY),
                                          ("near-duplicate of #1", AutoStage.NEAR_DUPLICATE)])
def test_a_vlm_keep_does_not_bring_back_a_copy(db, prompts, openai_fake, make_images, reason, stage):
    images = make_images(8)
    keeps = [im for im in images if expected(im, 0.0)[1] == "keep"]
    assert keeps  # the fake keeps about 60%
    Image.objects.filter(pk__in=[im.pk for im in keeps]).update(
        auto_decision="reject", auto_reason=reason, auto_stage=stage, final_decision="reject")
    run_stage(images, prompts["v3"], min_score=0.0)
    for image in Image.objects.filter(pk__in=[im.pk for im in keeps]):
        assert (image.auto_decision, image.final_decision, image.auto_reason) == ("reject", "reject", reason)
        assert image.vlm_score == VlmVerdict.objects.get(image=image).score
    others = Image.objects.exclude(pk__in=[im.pk for im in keeps])
    assert all(im.auto_reason.startswith("VLM v3") for im in others)


def test_room_and_object_tags_are_kept_apart(db, prompts, openai_fake, make_images):
    images = make_images(2)
    openai_fake.script = ["room_object_tags", "room_object_tags"]
    run_stage(images, prompts["v3"], workers=1)
    for v in VlmVerdict.objects.all():
        plain, rooms, objects = split_tags(v.tags)
        assert (rooms, objects) == (["kitchen"], ["mug", "cable"]) and "kitchen" not in objects


def test_a_selection_read_a_chunk_at_a_time_asks_only_what_is_missing(db, prompts, openai_fake, make_images,
                                                                       monkeypatch, settings):
    """The selection is loaded chunk by chunk as the calls take it: verdicts already made, deleted
    images and new ones in every chunk are counted as when it was read at once, and each image asked once."""
    monkeypatch.setattr(judge, "CHUNK", 4)
    images = make_images(11)
    ids = [i.pk for i in images]
    run_stage(ids[0:11:3], prompts["v3"])  # one in three already judged, spread over the chunks
    Image.objects.filter(pk__in=[ids[1], ids[10]]).delete()
    run = run_stage(ids, prompts["v3"], workers=2)
    assert run.counters["skipped"] == 4 and run.counters["error"] == 2
    assert run.counters["kept"] + run.counters["rejected"] == 5
    assert sorted(r["image_sha"] for r in openai_fake.requests) == sorted(
        {r["image_sha"] for r in openai_fake.requests})  # nobody asked twice
    assert len(openai_fake.requests) == 4 + 5
    for image in Image.objects.filter(pk__in=ids):
        assert image.auto_decision == expected(image)[1]
    # Nothing left to ask: no call, so no client either; a missing key is no error then.
    settings.SCENEIMG_OPENAI_API_KEY = ""
    rerun = run_stage(ids, prompts["v3"])
    assert rerun.status == Run.Status.DONE and rerun.counters["skipped"] == 9 and len(openai_fake.requests) == 9


def test_once_every_image_is_asked_for_replies_are_written_as_they_come(db, prompts, openai_fake, make_images,
                                                                         monkeypatch):
    """A quick reply is written while a slow one is still out, instead of waiting for a full batch
    (or the flush interval) and going in with it at the end."""
    monkeypatch.setattr(judge, "FLUSH_SECONDS", 60.0)
    written, flush = [], judge._Writer.flush

    def counting_flush(self):
        if self.buffer:
            written.append(len(self.buffer))
        return flush(self)

    monkeypatch.setattr(judge._Writer, "flush", counting_flush)
    openai_fake.script = ["valid", "slow"]  # whichever request arrives second waits slow_seconds
    run = run_stage(make_images(2), prompts["v3"], workers=2)
    assert run.counters.get("kept", 0) + run.counters.get("rejected", 0) == 2 and "error" not in run.counters
    assert written == [1, 1]
