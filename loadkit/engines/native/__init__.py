"""The native engine: one URL, or a declarative scenario's users (``scenario``,
``scenario_pool``), driven on asyncio + uvloop, one ``asyncio.Protocol`` per
connection, responses parsed by httptools (DESIGN.md, "Two engines, one measurement").

It never imports Locust or gevent, and feeds the same recorder, error kinds, timeline and
results file as the Locust path. ``share.run_share`` runs one process's share of a run;
``processes.run_processes`` runs several on this machine; ``loadkit.run.native`` is the command.
"""
