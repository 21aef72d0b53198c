from django.core.management.base import CommandError

from curation import launch, learned
from curation.stage_command import StageCommand


class Command(StageCommand):
    help = ("Train a new version of the learned scorer (a logistic-regression probe on CLIP embeddings) on "
            "every human decision so far, report its held-out precision, recall and AUC, and write its "
            "probability of keep to every other embedded image; it decides only above SCENEIMG_LEARNED_MIN_AUC.")
    summary_keys = ("trained_on", "held_out", "scored", "released")

    def add_arguments(self, parser):
        parser.add_argument("--if-due", action="store_true",
                            help="only when SCENEIMG_LEARNED_RETRAIN_EVERY new decisions came in since the last "
                                 "training (for cron or a timer)")
        self.add_enqueue_argument(parser)

    def handle(self, *args, **opts):
        if opts["if_due"] and not learned.retrain_due():
            self.stdout.write("not due: too few new human decisions since the last training")
            return
        params = launch.train_params()
        result = {}

        def stage(tracker):
            try:
                result["scorer"] = learned.train(tracker, model_key=params["model_key"], run=tracker.run)
            except learned.NotEnoughDecisions as exc:
                raise CommandError(str(exc)) from None

        self.run_stage(learned.KIND, stage, params, enqueue=opts["enqueue"], launch=launch.launch_train)
        scorer = result.get("scorer")
        if scorer is not None:
            auc = "n/a" if scorer.auc is None else f"{scorer.auc:.3f}"
            self.stdout.write(
                f"{scorer}: trained on {scorer.trained_on}, held out {scorer.held_out}: precision "
                f"{scorer.precision:.3f}, recall {scorer.recall:.3f}, AUC {auc}; "
                + ("decides (stage LEARNED)" if learned.decides(scorer) else
                   "scores only (AUC below SCENEIMG_LEARNED_MIN_AUC)"))
