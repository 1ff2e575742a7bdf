"""Everything the dashboard loads or computes once and shares between reruns and sessions: every
st.cache_* function and the background digit-map job, by topic. Views call `data.NAME(...)`."""

from dashboard.data.checkpoints import (
    checkpoint_dir,
    display_name,
    file_key,
    gpus,
    list_checkpoints,
    predictor,
    resolve_checkpoint,
    uncalibrated,
)
from dashboard.data.picture_reads import boxed_picture, drawing_id, read_picture, reread
from dashboard.data.map_job import digit_map, digit_map_job, reap_jobs, start_digit_map
from dashboard.data.collection_scores import collection, collection_version, holdout_scores, test_accuracy
from dashboard.data.evaluation import (
    benchmark,
    digit_calibration,
    evaluation_table,
    generated_row,
    generator_sequences,
    headlines_measured,
    measured_headlines,
    member_readings,
    sequence_images,
    suspects,
    sum_distribution,
    test_split,
    uncalibrated_table,
)
from dashboard.data.figures import error_figures, heatmap
from dashboard.data.label_decisions import decided, decisions
from dashboard.data.label_decisions import log_version as decisions_version
from dashboard.data.slice_results import compared_slices, disagreements, error_slices

__all__ = ["benchmark", "boxed_picture", "checkpoint_dir", "collection", "collection_version", "holdout_scores", "test_accuracy", "decided", "decisions", "decisions_version", "compared_slices", "digit_calibration", "digit_map", "digit_map_job",
           "disagreements", "display_name", "drawing_id", "error_figures", "error_slices", "evaluation_table", "file_key",
           "generated_row", "generator_sequences", "gpus", "headlines_measured", "heatmap", "list_checkpoints",
           "measured_headlines", "member_readings", "predictor", "reap_jobs", "read_picture", "reread", "resolve_checkpoint", "sequence_images",
           "start_digit_map", "suspects", "sum_distribution", "test_split", "uncalibrated", "uncalibrated_table"]
