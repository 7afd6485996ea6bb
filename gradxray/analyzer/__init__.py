"""The analyzer: ``ast`` front end, abstract interpreter, rules.

Entry points (stable; the CLI and the language server call these):

* ``analyze_source(source, path, settings=None) -> Analysis`` — never raises on
  bad user code.
* ``build_target(path, name, settings) -> (module, inputs, forward_callable)`` —
  for ``gradxray memory path.py:Name``.

The static path never imports torch: torch calls run on gradxray's engine.
"""
from __future__ import annotations

from .gc_pause import paused_gc
from .results import Analysis, Unresolved
from .settings import Settings

__all__ = ["analyze_source", "build_target", "Analysis", "Settings"]


def _syntax_error_text(path: str, e: SyntaxError) -> str:
    return f"{path}:{e.lineno or 1}:{e.offset or 1}: SyntaxError: {e.msg}"


def _engine_runtime(runtime):
    """``runtime``, or the engine on the shape backend when None."""
    if runtime is not None:
        return runtime
    from .torch_api import engine_runtime

    return engine_runtime()


def analyze_source(source: str, path: str, settings: Settings | None = None, *, runtime=None,
                   cache=None, jobs: int | None = None) -> Analysis:
    """Analyse one file: construct each root module class with its defaults (or ``settings.args``),
    run it on its discovered inputs in a training step, record per-line facts, then run the rules.

    ``cache`` (an ``incremental.TraceCache``, kept by a long-running caller such as the language
    server) reuses the results of root classes whose code and inputs did not change, and the parsed
    top-level statements an edit left unchanged (see ``statement_cache``).  ``jobs``: how
    many processes trace the root classes (see ``parallel``): None chooses, 1 keeps them in this one."""
    with paused_gc():
        return _analyze_source(source, path, settings or Settings(), runtime, cache, jobs)


def _analyze_source(source: str, path: str, settings: Settings, runtime, cache, jobs) -> Analysis:
    from .incremental import RootRecorder, RootResult, file_stamps, merge_root, root_keys, tests_stamp, \
        writes_module_state
    from .interpreter import Interpreter, analyze_root
    from .parallel import lines_of, map_forked, reap, root_durations, worker_count
    from .project import imported_bases, index_source, project_index, propagate_class_kinds, root_classes
    from .rules import run_rules
    from .torch_api import may_make_constants

    analysis = Analysis(path=path)
    try:
        index = index_source(source, path, cache.statements if cache is not None else None)
    except SyntaxError as e:
        analysis.error = _syntax_error_text(path, e)
        return analysis
    except (ValueError, RecursionError) as e:       # null bytes, absurd nesting
        analysis.error = f"{path}:1:1: {type(e).__name__}: {e}"
        return analysis
    interp = None
    default_runtime = runtime is None          # results on another runtime are not cached
    exiting: list[int] = []                    # workers that sent their results: reaped at the end
    try:
        runtime = _engine_runtime(runtime)
        with runtime.backend():
            interp = Interpreter(index, runtime, analysis, settings)
            # classes built on imported classes (`class Net(timm.models.ResNet)`, `(PreTrainedModel)`):
            # resolving their bases tells whether they are modules, and so roots to analyse
            pending = [c.name for c in index.classes.values() if not c.is_module and imported_bases(c, index)]
            for name in pending:
                interp.user_class(name)
            if pending:
                propagate_class_kinds(index)
            roots = root_classes(index)
            keys, project = {}, None
            if cache is not None and default_runtime:
                project = project_index(settings.search_paths)
                keys = root_keys(index, roots, settings, tests_stamp(path, settings.roots, project))
            seen = interp._seen_unresolved
            results = [cache.get(keys[c.name], project) if c.name in keys else None for c in roots]

            def trace(cinfo) -> RootResult:
                with RootRecorder(analysis, seen) as recorder:
                    try:
                        summary = analyze_root(interp, cinfo, settings)
                    except Exception as e:  # an analyzer bug must not cost the other classes
                        summary = None
                        analysis.unresolved.append(
                            Unresolved(path, cinfo.lineno, f"internal error: {type(e).__name__}: {e}"))
                    return recorder.finish(summary, file_stamps(interp.imported_files(), project)
                                           if cinfo.name in keys else ())

            todo = [c for c, r in zip(roots, results) if r is None]
            workers = worker_count(jobs, len(todo), lines_of(todo)) if default_runtime else 1
            # roots are traced apart only if none can leave module state behind for the next: checked
            # while the workers start; the longest the last time are handed out first
            duration_keys = [(path, c.name) for c in todo]
            seconds: list = []
            if workers > 1 and may_make_constants(source):
                runtime.preload_data_backend()      # one import here, not one in each process side by side
            traced = iter(map_forked(trace, todo, workers, proceed=lambda: not writes_module_state(index),
                                     exiting=exiting, order=root_durations.order(duration_keys),
                                     seconds=seconds))
            root_durations.record(duration_keys, seconds)
            for i, cinfo in enumerate(roots):
                if results[i] is None:
                    results[i] = next(traced)
                    if cinfo.name in keys:
                        cache.put(keys[cinfo.name], results[i])
                merge_root(analysis, results[i], seen)
    except Exception as e:
        analysis.unresolved.append(Unresolved(path, 1, f"internal error: {type(e).__name__}: {e}"))
    finally:
        if interp is not None:
            interp.release()        # frees the analysis by reference counting (see Interpreter.release)
    try:
        run_rules(analysis, source, settings)
    except Exception as e:
        analysis.unresolved.append(Unresolved(path, 1, f"rules failed: {type(e).__name__}: {e}"))
    finally:
        reap(exiting)
    return analysis


def build_target(path: str, name: str, settings: Settings | None = None, *, runtime=None):
    """``path.py:Name`` -> (module, inputs, forward_callable).

    ``Name`` is an ``nn.Module`` class of the file (constructed from its defaults or
    ``settings.args``) or a factory function returning one (called with ``settings.args``).
    ``inputs`` maps forward parameter names to data-less engine tensors.
    ``forward_callable(inputs=None)`` runs ``module(**inputs)`` under the interpreter (the
    built inputs when called without arguments), which is the ``run_forward`` that
    ``training_step.simulate_training_step(model, inputs, run_forward, settings)`` expects;
    ``forward_callable.analysis`` is the ``Analysis`` that collects its per-line facts and
    unresolved places, ``forward_callable.backend()`` the context the whole step should run in (small
    tensors of known values made in forward meet shape-only ones in backward too), and ``forward_callable.finish(reached_param_names)`` adds its
    GradCuts once the step knows which parameters received a gradient.

    Raises ``SyntaxError`` for bad source, ``LookupError`` when ``Name`` is not found,
    ``ValueError`` when it does not give a module or its input shapes are unknown.
    """
    settings = settings or Settings()
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    with paused_gc():
        return _build_target(source, path, name, settings, runtime)


def _build_target(source: str, path: str, name: str, settings: Settings, runtime):
    from .inputs import make_input_tensors
    from .interpreter import Budget, ForwardRun, Interpreter, forward_inputs, prepare_root
    from .project import index_source

    index = index_source(source, path)
    runtime = _engine_runtime(runtime)
    analysis = Analysis(path=path)
    with runtime.backend():
        interp = Interpreter(index, runtime, analysis, settings)
        try:
            model, ucls = prepare_root(interp, name, settings)
        except Budget:
            raise ValueError(f"{path}:{name}: analysis stopped (too many statements while building it)") from None
        if ucls is None:
            if runtime.is_module(model):
                raise ValueError(f"{path}:{name} is an engine module, not a model defined in the file")
            reasons = "; ".join(u.reason for u in analysis.unresolved[:3])
            raise ValueError(f"{path}:{name} did not give an nn.Module" + (f" ({reasons})" if reasons else ""))
        specs, diags, fwd = forward_inputs(interp, model, ucls, settings, name)
        analysis.diagnostics.extend(diags)
        if fwd is None:
            raise ValueError(f"{path}:{name}: {ucls.name} has no forward")
        if specs is None:
            msg = "; ".join(d.message for d in diags) or f"no input shape for {ucls.name}.forward"
            raise ValueError(f"{path}:{name}: {msg}")
        with runtime.source_location(path, fwd.node.lineno):
            inputs = make_input_tensors(specs, settings, runtime)
    run = ForwardRun(interp, model, inputs, fwd)

    def forward_callable(inputs: dict | None = None, **kwargs):
        with runtime.backend(), paused_gc():
            return run(inputs, **kwargs)

    forward_callable.analysis = analysis
    forward_callable.backend = runtime.backend     # for the rest of a step (backward may meet constants)
    forward_callable.input_specs = specs
    forward_callable.finish = run.finish
    return model, inputs, forward_callable
