from django.core.management.base import CommandError

from curation import launch
from curation.clip import ModelConfigError, ModelWeightsMissing, load_prompt_set
from curation.models import Run
from curation.registry import LaunchError
from curation.rescore import RescoreError, check_rule, rescore
from curation.scoring import DecisionRule
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Rescore every image that has a stored embedding with a CLIP prompt set and margins, without "
            "decoding any image: FilterScores, margins and decisions as filter_clip writes them.")
    summary_keys = ("kept", "rejected", "no_embedding")

    def add_arguments(self, parser):
        parser.add_argument("--prompts", default=None,
                            help="prompt set version, curation/clip_prompts/<version>.json (default SCENEIMG_CLIP_PROMPTS)")
        parser.add_argument("--indoor-margin", type=float, default=0.0,
                            help="keep when indoor - outdoor >= this (default 0.0)")
        parser.add_argument("--moderate-margin", type=float, default=None,
                            help="also require moderate - max(tidy, messy) >= this (off unless given)")
        parser.add_argument("--device", default=None, help="where the prompt embeddings are computed")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        rule = DecisionRule(indoor_margin=opts["indoor_margin"], moderate_margin=opts["moderate_margin"])
        try:
            check_rule(rule)
            version = load_prompt_set(opts["prompts"]).version
        except (RescoreError, ModelConfigError) as exc:
            raise CommandError(str(exc)) from None
        params = launch.rescore_params(version, device=opts["device"], **rule.as_params())

        def stage(tracker):
            try:
                return rescore(tracker, rule=rule, prompt_version=version, device=opts["device"])
            except ModelWeightsMissing as exc:
                raise CommandError(str(exc)) from None

        try:
            self.run_stage(Run.Kind.CLIP, stage, params, enqueue=opts["enqueue"], launch=launch.launch_rescore)
        except LaunchError as exc:
            raise CommandError(str(exc)) from None
