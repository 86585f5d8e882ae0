from hybrid.evaluate.metrics import SCORE_KEYS, SOC_WINDOW, error_stats, kelvin_stats, mean_over, over_seeds, percent_stats, rms, rmse_mV, score_all, score_record, score_tables, summarise
from hybrid.evaluate.plots import curve_plot, error_traces
from hybrid.evaluate.predict import Predictions, RecordPrediction, physics_prediction, predict_corpus, predict_record, predict_records
from hybrid.evaluate.report import capacity_to_cutoff, evaluate_models
from hybrid.evaluate.rows import LATE_AFTER_CYCLE, ROW_CLASSES, TIMESCALES, class_errors, class_rmse_mV, held_out_class_rmse_mV, physics_model, row_class_splits, timescale_masks
from hybrid.evaluate.run import evaluate_run
from hybrid.evaluate.tables import (format_mean_sd, format_value, json_safe, markdown_table, per_record_table, per_test_table,
                                    summary_table, write_outputs)

__all__ = ['LATE_AFTER_CYCLE', 'Predictions', 'ROW_CLASSES', 'RecordPrediction', 'SCORE_KEYS', 'SOC_WINDOW', 'TIMESCALES', 'capacity_to_cutoff', 'class_errors', 'class_rmse_mV', 'curve_plot', 'error_stats', 'error_traces', 'evaluate_models', 'evaluate_run', 'format_mean_sd', 'format_value', 'held_out_class_rmse_mV', 'json_safe', 'kelvin_stats', 'markdown_table', 'mean_over', 'over_seeds', 'per_record_table', 'per_test_table', 'percent_stats', 'physics_model', 'physics_prediction', 'predict_corpus', 'predict_record', 'predict_records', 'rms', 'rmse_mV', 'row_class_splits', 'score_all', 'score_record', 'score_tables', 'summarise', 'summary_table', 'timescale_masks', 'write_outputs']
