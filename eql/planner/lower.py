"""Lower the bound IR to the logical plan.

Each scope (the rows of an entity or a stream) becomes one relation with a row per scope row:
a scan of the root table, a left join per distinct one-valued path (shared by every mention),
and per aggregate source one pre-aggregated relation grouped by the source's foreign key, left
joined back by key. Aggregating before joining back is what keeps aggregates from fanning out:
adding an aggregate over another stream never changes the first one's value.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import assert_never

from entities import Schema
from eql import types
from eql.binder import bound
from eql.catalog import (
    ID_COLUMN,
    EntityTable,
    StreamTable,
    TableRef,
    VersionRef,
    Virtual,
    ref_key,
)
from eql.diagnostics import InternalError
from eql.planner import logical
from eql.planner.join_kinds import Existence, classify
from eql.planner.overflow import sum_check
from eql.types import Type


@dataclass
class _Env:
    """What a built scope relation offers: columns by (path, name) and aggregates by value."""

    columns: dict[tuple[bound.Path, str | Virtual], logical.ColumnId] = field(default_factory=dict)
    aggregates: dict[bound.Aggregate, logical.ColumnId] = field(default_factory=dict)
    types: dict[logical.ColumnId, Type] = field(default_factory=dict)


@dataclass
class _Needs:
    columns: dict[bound.Path, set[str | Virtual]] = field(default_factory=dict)
    sources: dict[bound.Source, list[bound.Aggregate]] = field(default_factory=dict)

    def column(self, path: bound.Path, name: str | Virtual) -> None:
        self.columns.setdefault(path, set()).add(name)
        # every step of the path needs its via column on the row before it
        for i, step in enumerate(path.steps):
            self.columns.setdefault(bound.Path(path.steps[:i]), set()).add(step.via)


class Lowerer:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._ids = itertools.count(1)

    def new_id(self) -> logical.ColumnId:
        return logical.ColumnId(next(self._ids))

    # ---- scopes ------------------------------------------------------------------------------
    def key_column(self, scope: bound.Scope) -> str | None:
        if scope.kind is bound.ScopeKind.ENTITY:
            return self.schema.require_entity(scope.name).key.name
        return None

    def entity_at(self, scope: bound.Scope, path: bound.Path) -> str | None:
        if path.steps:
            return path.steps[-1].target
        return scope.name if scope.kind is bound.ScopeKind.ENTITY else None

    def column_type(self, scope: bound.Scope, path: bound.Path, name: str) -> Type:
        if name == ID_COLUMN:
            return types.INT
        entity = self.entity_at(scope, path)
        if entity is not None:
            attr = self.schema.require_entity(entity).column(name)
        else:
            attr = next((a for a in self.schema.stream_columns(scope.name) if a.name == name), None)
        if attr is None:
            raise InternalError(f"no column {name} at {path} in {scope}")
        return types.from_schema(attr.type)

    def collect(self, e: bound.BExpr, needs: _Needs, owner: str) -> None:
        """Walk an expression in the current scope; aggregates with a source are not entered."""
        match e:
            case bound.Column(path=path, column=name):
                needs.column(path, name)
            case bound.Aggregate(source=None, arg=arg, filter=flt):
                for sub in (arg, flt):
                    if sub is not None:
                        self.collect(sub, needs, owner)
            case bound.Aggregate(source=source) if source is not None:
                needs.sources.setdefault(source, [])
                if e not in needs.sources[source]:
                    needs.sources[source].append(e)
                owner_key = self._owner_key(source, owner)
                needs.column(source.path, owner_key)
            case _:
                for child in bound.children(e):
                    self.collect(child, needs, owner)

    def _owner_key(self, source: bound.Source, scope_entity: str) -> str:
        """The key of the entity whose elements `source` holds (the row its path reaches)."""
        owner = source.path.steps[-1].target if source.path.steps else scope_entity
        return self.schema.require_entity(owner).key.name

    def build_scope(
        self,
        scope: bound.Scope,
        exprs: list[bound.BExpr],
        extra: tuple[str, ...] = (),
        inner: frozenset[bound.Source] = frozenset(),
    ) -> tuple[logical.Plan, _Env]:
        """A relation with one row per row of `scope`, offering what `exprs` need. Sources in
        `inner` may be inner-joined: the caller filters out rows without their elements."""
        needs = _Needs()
        for name in extra:
            needs.column(bound.ROOT, name)
        key = self.key_column(scope)
        if key is not None:
            needs.column(bound.ROOT, key)
        for e in exprs:
            self.collect(e, needs, scope.name)
        env = _Env()
        plan = self._scan(scope, bound.ROOT, needs.columns.get(bound.ROOT, set()), env)
        paths = sorted((p for p in needs.columns if p.steps), key=lambda p: len(p.steps))
        for path in paths:
            parent = bound.Path(path.steps[:-1])
            step = path.steps[-1]
            target = self.schema.require_entity(step.target)
            wanted = needs.columns[path] | {target.key.name}
            right_env = _Env()
            right = self._scan(scope, path, wanted, right_env)
            plan = logical.Join(
                plan,
                right,
                (env.columns[(parent, step.via)],),
                (right_env.columns[(path, target.key.name)],),
                logical.JoinKind.LEFT,
            )
            env.columns.update(right_env.columns)
            env.types.update(right_env.types)
        for source, aggs in needs.sources.items():
            kind = logical.JoinKind.INNER if source in inner else logical.JoinKind.LEFT
            plan = self._join_source(scope, plan, env, source, aggs, kind)
        return plan, env

    def _scan(
        self, scope: bound.Scope, path: bound.Path, names: set[str | Virtual], env: _Env
    ) -> logical.Plan:
        entity = self.entity_at(scope, path)
        table: TableRef = EntityTable(entity) if entity is not None else StreamTable(scope.name)
        virtuals: dict[VersionRef, list[Virtual]] = {}
        real: set[str] = set()
        for name in names:
            if isinstance(name, Virtual):
                virtuals.setdefault(name.table, []).append(name)
            else:
                real.add(name)
        if virtuals:
            real.add(ID_COLUMN)
        cols = []
        for name in sorted(real):
            cid = self.new_id()
            t = self.column_type(scope, path, name)
            env.columns[(path, name)] = cid
            env.types[cid] = t
            cols.append((name, cid, t))
        plan: logical.Plan = logical.Scan(table, tuple(cols))
        # tags and segments: the version table, left-joined on the dense id
        for vtable in sorted(virtuals, key=ref_key):
            id_cid = self.new_id()
            vcols = [(ID_COLUMN, id_cid, types.INT)]
            for virtual in sorted(virtuals[vtable], key=lambda v: v.column):
                cid = self.new_id()
                env.columns[(path, virtual)] = cid
                env.types[cid] = virtual.type
                vcols.append((virtual.column, cid, virtual.type))
            right = logical.Scan(vtable, tuple(vcols))
            plan = logical.Join(
                plan, right, (env.columns[(path, ID_COLUMN)],), (id_cid,), logical.JoinKind.LEFT
            )
        return plan

    def _join_source(
        self,
        scope: bound.Scope,
        plan: logical.Plan,
        env: _Env,
        source: bound.Source,
        aggs: list[bound.Aggregate],
        kind: logical.JoinKind = logical.JoinKind.LEFT,
    ) -> logical.Plan:
        element, fk, time = element_of(source)
        # a filter every aggregate of the source shares is applied once, as a WHERE on the
        # elements (so DID / NOT DID in it become semi/anti joins), not as per-aggregate FILTERs
        shared = aggs[0].filter if all(a.filter == aggs[0].filter for a in aggs) else None
        inner: list[bound.BExpr] = []
        for a in aggs:
            inner.extend(x for x in (a.arg, None if shared else a.filter) if x is not None)
        extra = tuple(n for n in (fk, time, *(a.order_column or "" for a in aggs)) if n)
        eplan, eenv = self.filtered_scope(element, inner, extra, shared)
        fk_id = eenv.columns[(bound.ROOT, fk)]
        time_col = logical.LCol(eenv.columns[(bound.ROOT, time)], types.TIMESTAMP) if time else None
        bounds = [a.window for a in aggs]
        scanned: bound.Window | None = None
        if time_col is not None and all(w is not None for w in bounds):
            # read only the time range some aggregate needs
            starts = [w.start for w in bounds if w is not None]
            lo = None if any(s is None for s in starts) else min(s for s in starts if s)
            hi = max(w.end for w in bounds if w is not None)
            eplan = logical.Filter(eplan, _range(time_col, lo, hi))
            scanned = bound.Window(lo, hi)
        eplan = logical.Filter(
            eplan, logical.LIsNull(logical.LCol(fk_id, env_type(eenv, fk_id)), True, types.BOOL)
        )
        group_id = self.new_id()
        lagg: list[tuple[logical.LAgg, logical.ColumnId]] = []
        for a in aggs:
            cond = self.expr(a.filter, eenv) if a.filter is not None and not shared else None
            if a.window is not None and time_col is not None and a.window != scanned:
                w = _range(time_col, a.window.start, a.window.end)
                cond = w if cond is None else logical.LBinary(bound.BinOp.AND, w, cond, types.BOOL)
            arg = self.expr(a.arg, eenv) if a.arg is not None else None
            order = (
                logical.LCol(eenv.columns[(bound.ROOT, a.order_column)], types.TIMESTAMP)
                if a.order_column
                else None
            )
            cid = self.new_id()
            lagg.append(
                (logical.LAgg(a.func, arg, a.distinct, cond, order, a.type, sum_check(a)), cid)
            )
            env.aggregates[a] = cid
            env.types[cid] = a.type
        agg = logical.Aggregate(
            eplan, ((logical.LCol(fk_id, env_type(eenv, fk_id)), group_id),), tuple(lagg)
        )
        owner_key = env.columns[(source.path, self._owner_key(source, scope.name))]
        return logical.Join(plan, agg, (owner_key,), (group_id,), kind)

    def filtered_scope(
        self,
        scope: bound.Scope,
        exprs: list[bound.BExpr],
        extra: tuple[str, ...],
        where: bound.BExpr | None,
    ) -> tuple[logical.Plan, _Env]:
        """`build_scope` with a WHERE: its DID / NOT DID conjuncts as semi/anti joins, sources it
        requires inner-joined, the other conjuncts as filters (as for a query's WHERE)."""
        if where is None:
            return self.build_scope(scope, exprs, extra)
        joins = classify(where)
        plan, env = self.build_scope(scope, [*exprs, *joins.rest], extra, joins.inner)
        for ex in joins.existence:
            plan = self.existence_join(scope, plan, env, ex)
        if joins.rest:
            plan = logical.Filter(plan, all_of([self.expr(c, env) for c in joins.rest]))
        return plan, env

    def existence_join(
        self, scope: bound.Scope, plan: logical.Plan, env: _Env, ex: Existence
    ) -> logical.Plan:
        """Keep the rows of `plan` with (semi) or without (anti) a matching element."""
        source = ex.source
        element, fk, time = element_of(source)
        extra = tuple(n for n in (fk, time) if n)
        eplan, eenv = self.filtered_scope(element, [], extra, ex.filter)
        fk_id = eenv.columns[(bound.ROOT, fk)]
        conds: list[logical.LExpr] = [
            logical.LIsNull(logical.LCol(fk_id, env_type(eenv, fk_id)), True, types.BOOL)
        ]
        if ex.window is not None and time:
            t = logical.LCol(eenv.columns[(bound.ROOT, time)], types.TIMESTAMP)
            conds.insert(0, _range(t, ex.window.start, ex.window.end))
        for c in conds:
            eplan = logical.Filter(eplan, c)
        keys = logical.Project(eplan, ((logical.LCol(fk_id, env_type(eenv, fk_id)), fk_id),))
        owner_key = env.columns[(bound.ROOT, self.schema.require_entity(scope.name).key.name)]
        kind = logical.JoinKind.ANTI if ex.negated else logical.JoinKind.SEMI
        return logical.Join(plan, keys, (owner_key,), (fk_id,), kind)

    # ---- expressions -------------------------------------------------------------------------
    _subst: Mapping[bound.BExpr, logical.ColumnId] = {}

    def expr_over(
        self, e: bound.BExpr, env: _Env, subst: Mapping[bound.BExpr, logical.ColumnId]
    ) -> logical.LExpr:
        """Translate `e` where the sub-expressions in `subst` are already columns (after a
        grouping: group keys and group aggregates)."""
        saved, self._subst = self._subst, subst
        try:
            return self.expr(e, env)
        finally:
            self._subst = saved

    def expr(self, e: bound.BExpr, env: _Env) -> logical.LExpr:
        done = self._subst.get(e)
        if done is not None:
            return logical.LCol(done, e.type)
        match e:
            case bound.Literal(value=v, type=t) | bound.Param(value=v, type=t):
                return logical.LLit(v, t)
            case bound.Column(path=path, column=name, type=t):
                cid = env.columns.get((path, name))
                if cid is None:
                    raise InternalError(f"column {path}.{name} was not collected")
                return logical.LCol(cid, t)
            case bound.Aggregate():
                cid = env.aggregates.get(e)
                if cid is None:
                    raise InternalError(f"aggregate {e.func} was not collected")
                col = logical.LCol(cid, e.type)
                if e.func in (bound.AggFunc.COUNT, bound.AggFunc.SUM) and e.source is not None:
                    zero = (
                        logical.LLit(0, e.type)
                        if e.type.kind is not types.Kind.DECIMAL
                        else logical.LLit(decimal.Decimal(0), e.type)
                    )
                    return logical.LCall("coalesce", (col, zero), e.type)
                return col
            case bound.Call(func=f, args=args, type=t):
                return logical.LCall(f, tuple(self.expr(a, env) for a in args), t)
            case bound.Unary(op=op, arg=arg, type=t):
                return logical.LUnary(op, self.expr(arg, env), t)
            case bound.Binary(op=op, left=left, right=right, type=t):
                return logical.LBinary(op, self.expr(left, env), self.expr(right, env), t)
            case bound.IsNull(arg=arg, negated=neg, type=t):
                return logical.LIsNull(self.expr(arg, env), neg, t)
            case bound.InList(arg=arg, items=items, negated=neg, type=t):
                return logical.LInList(
                    self.expr(arg, env), tuple(self.expr(i, env) for i in items), neg, t
                )
            case bound.Between(arg=arg, low=lo, high=hi, negated=neg, type=t):
                a = self.expr(arg, env)
                both = logical.LBinary(
                    bound.BinOp.AND,
                    logical.LBinary(bound.BinOp.GE, a, self.expr(lo, env), types.BOOL),
                    logical.LBinary(bound.BinOp.LE, a, self.expr(hi, env), types.BOOL),
                    types.BOOL,
                )
                return logical.LUnary(bound.UnaryOp.NOT, both, t) if neg else both
            case bound.Like(arg=arg, pattern=p, negated=neg, type=t):
                return logical.LLike(self.expr(arg, env), self.expr(p, env), neg, t)
            case bound.Case(whens=whens, otherwise=other, type=t):
                return logical.LCase(
                    tuple((self.expr(c, env), self.expr(v, env)) for c, v in whens),
                    self.expr(other, env) if other is not None else None,
                    t,
                )
            case bound.Cast(arg=arg, type=t):
                return logical.LCast(self.expr(arg, env), t)
            case _:
                assert_never(e)


def all_of(conds: list[logical.LExpr]) -> logical.LExpr:
    """One predicate for many conjuncts, as a balanced AND tree (shallow for any count)."""
    if len(conds) == 1:
        return conds[0]
    mid = len(conds) // 2
    return logical.LBinary(bound.BinOp.AND, all_of(conds[:mid]), all_of(conds[mid:]), types.BOOL)


def element_of(source: bound.Source) -> tuple[bound.Scope, str, str]:
    """A source's element scope, the element column holding the owner's key, and the
    element's time column ("" for a relation's rows, which have no time)."""
    if isinstance(source, bound.StreamSource):
        return bound.Scope(bound.ScopeKind.EVENT, source.stream), source.column, source.time
    return bound.Scope(bound.ScopeKind.ENTITY, source.target), source.via, ""


def env_type(env: _Env, cid: logical.ColumnId) -> Type:
    return env.types.get(cid, types.NULL)


def _range(time: logical.LExpr, lo: dt.datetime | None, hi: dt.datetime) -> logical.LExpr:
    upper = logical.LBinary(bound.BinOp.LT, time, logical.LLit(hi, types.TIMESTAMP), types.BOOL)
    if lo is None:
        return upper
    lower = logical.LBinary(bound.BinOp.GE, time, logical.LLit(lo, types.TIMESTAMP), types.BOOL)
    return logical.LBinary(bound.BinOp.AND, lower, upper, types.BOOL)
