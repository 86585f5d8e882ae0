from sim.corpus.generate import CorpusSpec, ProtocolChoice, Range, generate_corpus
from sim.corpus.sample import SampleResult, WORKER_CACHE, base_record, plan_sample, run_sample
from sim.corpus.validity import PHYSICS_VOLTAGE_MARGIN_V, left_window_message, rows_inside_window
from sim.corpus.writer import PHYSICS_COLUMNS, SCHEMA_VERSION, CorpusWriter, cycles_table, series_table

__all__ = ['CorpusSpec', 'CorpusWriter', 'PHYSICS_COLUMNS', 'PHYSICS_VOLTAGE_MARGIN_V', 'ProtocolChoice',
           'Range', 'SCHEMA_VERSION', 'SampleResult', 'WORKER_CACHE', 'base_record', 'cycles_table',
           'generate_corpus', 'left_window_message', 'plan_sample', 'rows_inside_window', 'run_sample',
           'series_table']
