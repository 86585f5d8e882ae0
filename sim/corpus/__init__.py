from sim.corpus.generate import CorpusSpec, ProtocolChoice, Range, SCHEMA_VERSION, consolidate_journal, generate_corpus, package_versions, write_json, write_table
from sim.corpus.sample import PHYSICS_COLUMNS, SampleResult, WORKER_CACHE, base_record, plan_sample, run_sample

__all__ = ['CorpusSpec', 'PHYSICS_COLUMNS', 'ProtocolChoice', 'Range', 'SCHEMA_VERSION', 'SampleResult', 'WORKER_CACHE', 'base_record', 'consolidate_journal', 'generate_corpus', 'package_versions', 'plan_sample', 'run_sample', 'write_json', 'write_table']
