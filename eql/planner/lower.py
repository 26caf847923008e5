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
from eql import types as T
from eql.binder import bound as B
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
from eql.planner import logical as L
from eql.planner.join_kinds import Existence, classify
from eql.types import Type


@dataclass
class _Env:
    """What a built scope relation offers: columns by (path, name) and aggregates by value."""

    columns: dict[tuple[B.Path, str | Virtual], L.ColumnId] = field(default_factory=dict)
    aggregates: dict[B.Aggregate, L.ColumnId] = field(default_factory=dict)
    types: dict[L.ColumnId, Type] = field(default_factory=dict)


@dataclass
class _Needs:
    columns: dict[B.Path, set[str | Virtual]] = field(default_factory=dict)
    sources: dict[B.Source, list[B.Aggregate]] = field(default_factory=dict)

    def column(self, path: B.Path, name: str | Virtual) -> None:
        self.columns.setdefault(path, set()).add(name)
        # every step of the path needs its via column on the row before it
        for i, step in enumerate(path.steps):
            self.columns.setdefault(B.Path(path.steps[:i]), set()).add(step.via)


class Lowerer:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._ids = itertools.count(1)

    def new_id(self) -> L.ColumnId:
        return L.ColumnId(next(self._ids))

    # ---- scopes ------------------------------------------------------------------------------
    def key_column(self, scope: B.Scope) -> str | None:
        if scope.kind is B.ScopeKind.ENTITY:
            return self.schema.require_entity(scope.name).key.name
        return None

    def entity_at(self, scope: B.Scope, path: B.Path) -> str | None:
        if path.steps:
            return path.steps[-1].target
        return scope.name if scope.kind is B.ScopeKind.ENTITY else None

    def column_type(self, scope: B.Scope, path: B.Path, name: str) -> Type:
        if name == ID_COLUMN:
            return T.INT
        entity = self.entity_at(scope, path)
        if entity is not None:
            attr = self.schema.require_entity(entity).column(name)
        else:
            attr = next((a for a in self.schema.stream_columns(scope.name) if a.name == name), None)
        if attr is None:
            raise InternalError(f"no column {name} at {path} in {scope}")
        return T.from_schema(attr.type)

    def collect(self, e: B.BExpr, needs: _Needs, owner: str) -> None:
        """Walk an expression in the current scope; aggregates with a source are not entered."""
        match e:
            case B.Column(path=path, column=name):
                needs.column(path, name)
            case B.Aggregate(source=None, arg=arg, filter=flt):
                for sub in (arg, flt):
                    if sub is not None:
                        self.collect(sub, needs, owner)
            case B.Aggregate(source=source) if source is not None:
                needs.sources.setdefault(source, [])
                if e not in needs.sources[source]:
                    needs.sources[source].append(e)
                owner_key = self._owner_key(source, owner)
                needs.column(source.path, owner_key)
            case _:
                for child in B.children(e):
                    self.collect(child, needs, owner)

    def _owner_key(self, source: B.Source, scope_entity: str) -> str:
        """The key of the entity whose elements `source` holds (the row its path reaches)."""
        owner = source.path.steps[-1].target if source.path.steps else scope_entity
        return self.schema.require_entity(owner).key.name

    def build_scope(
        self,
        scope: B.Scope,
        exprs: list[B.BExpr],
        extra: tuple[str, ...] = (),
        inner: frozenset[B.Source] = frozenset(),
    ) -> tuple[L.Plan, _Env]:
        """A relation with one row per row of `scope`, offering what `exprs` need. Sources in
        `inner` may be inner-joined: the caller filters out rows without their elements."""
        needs = _Needs()
        for name in extra:
            needs.column(B.ROOT, name)
        key = self.key_column(scope)
        if key is not None:
            needs.column(B.ROOT, key)
        for e in exprs:
            self.collect(e, needs, scope.name)
        env = _Env()
        plan = self._scan(scope, B.ROOT, needs.columns.get(B.ROOT, set()), env)
        paths = sorted((p for p in needs.columns if p.steps), key=lambda p: len(p.steps))
        for path in paths:
            parent = B.Path(path.steps[:-1])
            step = path.steps[-1]
            target = self.schema.require_entity(step.target)
            wanted = needs.columns[path] | {target.key.name}
            right_env = _Env()
            right = self._scan(scope, path, wanted, right_env)
            plan = L.Join(
                plan,
                right,
                (env.columns[(parent, step.via)],),
                (right_env.columns[(path, target.key.name)],),
                L.JoinKind.LEFT,
            )
            env.columns.update(right_env.columns)
            env.types.update(right_env.types)
        for source, aggs in needs.sources.items():
            kind = L.JoinKind.INNER if source in inner else L.JoinKind.LEFT
            plan = self._join_source(scope, plan, env, source, aggs, kind)
        return plan, env

    def _scan(self, scope: B.Scope, path: B.Path, names: set[str | Virtual], env: _Env) -> L.Plan:
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
        plan: L.Plan = L.Scan(table, tuple(cols))
        # tags and segments: the version table, left-joined on the dense id
        for vtable in sorted(virtuals, key=ref_key):
            id_cid = self.new_id()
            vcols = [(ID_COLUMN, id_cid, T.INT)]
            for virtual in sorted(virtuals[vtable], key=lambda v: v.column):
                cid = self.new_id()
                env.columns[(path, virtual)] = cid
                env.types[cid] = virtual.type
                vcols.append((virtual.column, cid, virtual.type))
            right = L.Scan(vtable, tuple(vcols))
            plan = L.Join(
                plan, right, (env.columns[(path, ID_COLUMN)],), (id_cid,), L.JoinKind.LEFT
            )
        return plan

    def _join_source(
        self,
        scope: B.Scope,
        plan: L.Plan,
        env: _Env,
        source: B.Source,
        aggs: list[B.Aggregate],
        kind: L.JoinKind = L.JoinKind.LEFT,
    ) -> L.Plan:
        element, fk, time = element_of(source)
        # a filter every aggregate of the source shares is applied once, as a WHERE on the
        # elements (so DID / NOT DID in it become semi/anti joins), not as per-aggregate FILTERs
        shared = aggs[0].filter if all(a.filter == aggs[0].filter for a in aggs) else None
        inner: list[B.BExpr] = []
        for a in aggs:
            inner.extend(x for x in (a.arg, None if shared else a.filter) if x is not None)
        extra = tuple(n for n in (fk, time, *(a.order_column or "" for a in aggs)) if n)
        eplan, eenv = self.filtered_scope(element, inner, extra, shared)
        fk_id = eenv.columns[(B.ROOT, fk)]
        time_col = L.LCol(eenv.columns[(B.ROOT, time)], T.TIMESTAMP) if time else None
        bounds = [a.window for a in aggs]
        scanned: B.Window | None = None
        if time_col is not None and all(w is not None for w in bounds):
            # read only the time range some aggregate needs
            starts = [w.start for w in bounds if w is not None]
            lo = None if any(s is None for s in starts) else min(s for s in starts if s)
            hi = max(w.end for w in bounds if w is not None)
            eplan = L.Filter(eplan, _range(time_col, lo, hi))
            scanned = B.Window(lo, hi)
        eplan = L.Filter(eplan, L.LIsNull(L.LCol(fk_id, env_type(eenv, fk_id)), True, T.BOOL))
        group_id = self.new_id()
        lagg: list[tuple[L.LAgg, L.ColumnId]] = []
        for a in aggs:
            cond = self.expr(a.filter, eenv) if a.filter is not None and not shared else None
            if a.window is not None and time_col is not None and a.window != scanned:
                w = _range(time_col, a.window.start, a.window.end)
                cond = w if cond is None else L.LBinary(B.BinOp.AND, w, cond, T.BOOL)
            arg = self.expr(a.arg, eenv) if a.arg is not None else None
            order = (
                L.LCol(eenv.columns[(B.ROOT, a.order_column)], T.TIMESTAMP)
                if a.order_column
                else None
            )
            cid = self.new_id()
            lagg.append((L.LAgg(a.func, arg, a.distinct, cond, order, a.type), cid))
            env.aggregates[a] = cid
            env.types[cid] = a.type
        agg = L.Aggregate(eplan, ((L.LCol(fk_id, env_type(eenv, fk_id)), group_id),), tuple(lagg))
        owner_key = env.columns[(source.path, self._owner_key(source, scope.name))]
        return L.Join(plan, agg, (owner_key,), (group_id,), kind)

    def filtered_scope(
        self, scope: B.Scope, exprs: list[B.BExpr], extra: tuple[str, ...], where: B.BExpr | None
    ) -> tuple[L.Plan, _Env]:
        """`build_scope` with a WHERE: its DID / NOT DID conjuncts as semi/anti joins, sources it
        requires inner-joined, the other conjuncts as filters (as for a query's WHERE)."""
        if where is None:
            return self.build_scope(scope, exprs, extra)
        joins = classify(where)
        plan, env = self.build_scope(scope, [*exprs, *joins.rest], extra, joins.inner)
        for ex in joins.existence:
            plan = self.existence_join(scope, plan, env, ex)
        if joins.rest:
            plan = L.Filter(plan, all_of([self.expr(c, env) for c in joins.rest]))
        return plan, env

    def existence_join(self, scope: B.Scope, plan: L.Plan, env: _Env, ex: Existence) -> L.Plan:
        """Keep the rows of `plan` with (semi) or without (anti) a matching element."""
        source = ex.source
        element, fk, time = element_of(source)
        extra = tuple(n for n in (fk, time) if n)
        eplan, eenv = self.filtered_scope(element, [], extra, ex.filter)
        fk_id = eenv.columns[(B.ROOT, fk)]
        conds: list[L.LExpr] = [L.LIsNull(L.LCol(fk_id, env_type(eenv, fk_id)), True, T.BOOL)]
        if ex.window is not None and time:
            t = L.LCol(eenv.columns[(B.ROOT, time)], T.TIMESTAMP)
            conds.insert(0, _range(t, ex.window.start, ex.window.end))
        for c in conds:
            eplan = L.Filter(eplan, c)
        keys = L.Project(eplan, ((L.LCol(fk_id, env_type(eenv, fk_id)), fk_id),))
        owner_key = env.columns[(B.ROOT, self.schema.require_entity(scope.name).key.name)]
        kind = L.JoinKind.ANTI if ex.negated else L.JoinKind.SEMI
        return L.Join(plan, keys, (owner_key,), (fk_id,), kind)

    # ---- expressions -------------------------------------------------------------------------
    _subst: Mapping[B.BExpr, L.ColumnId] = {}

    def expr_over(self, e: B.BExpr, env: _Env, subst: Mapping[B.BExpr, L.ColumnId]) -> L.LExpr:
        """Translate `e` where the sub-expressions in `subst` are already columns (after a
        grouping: group keys and group aggregates)."""
        saved, self._subst = self._subst, subst
        try:
            return self.expr(e, env)
        finally:
            self._subst = saved

    def expr(self, e: B.BExpr, env: _Env) -> L.LExpr:
        done = self._subst.get(e)
        if done is not None:
            return L.LCol(done, e.type)
        match e:
            case B.Literal(value=v, type=t) | B.Param(value=v, type=t):
                return L.LLit(v, t)
            case B.Column(path=path, column=name, type=t):
                cid = env.columns.get((path, name))
                if cid is None:
                    raise InternalError(f"column {path}.{name} was not collected")
                return L.LCol(cid, t)
            case B.Aggregate():
                cid = env.aggregates.get(e)
                if cid is None:
                    raise InternalError(f"aggregate {e.func} was not collected")
                col = L.LCol(cid, e.type)
                if e.func in (B.AggFunc.COUNT, B.AggFunc.SUM) and e.source is not None:
                    zero = (
                        L.LLit(0, e.type)
                        if e.type.kind is not T.Kind.DECIMAL
                        else L.LLit(decimal.Decimal(0), e.type)
                    )
                    return L.LCall("coalesce", (col, zero), e.type)
                return col
            case B.Call(func=f, args=args, type=t):
                return L.LCall(f, tuple(self.expr(a, env) for a in args), t)
            case B.Unary(op=op, arg=arg, type=t):
                return L.LUnary(op, self.expr(arg, env), t)
            case B.Binary(op=op, left=left, right=right, type=t):
                return L.LBinary(op, self.expr(left, env), self.expr(right, env), t)
            case B.IsNull(arg=arg, negated=neg, type=t):
                return L.LIsNull(self.expr(arg, env), neg, t)
            case B.InList(arg=arg, items=items, negated=neg, type=t):
                return L.LInList(
                    self.expr(arg, env), tuple(self.expr(i, env) for i in items), neg, t
                )
            case B.Between(arg=arg, low=lo, high=hi, negated=neg, type=t):
                a = self.expr(arg, env)
                both = L.LBinary(
                    B.BinOp.AND,
                    L.LBinary(B.BinOp.GE, a, self.expr(lo, env), T.BOOL),
                    L.LBinary(B.BinOp.LE, a, self.expr(hi, env), T.BOOL),
                    T.BOOL,
                )
                return L.LUnary(B.UnaryOp.NOT, both, t) if neg else both
            case B.Like(arg=arg, pattern=p, negated=neg, type=t):
                return L.LLike(self.expr(arg, env), self.expr(p, env), neg, t)
            case B.Case(whens=whens, otherwise=other, type=t):
                return L.LCase(
                    tuple((self.expr(c, env), self.expr(v, env)) for c, v in whens),
                    self.expr(other, env) if other is not None else None,
                    t,
                )
            case B.Cast(arg=arg, type=t):
                return L.LCast(self.expr(arg, env), t)
            case _:
                assert_never(e)


def all_of(conds: list[L.LExpr]) -> L.LExpr:
    """One predicate for many conjuncts, as a balanced AND tree (shallow for any count)."""
    if len(conds) == 1:
        return conds[0]
    mid = len(conds) // 2
    return L.LBinary(B.BinOp.AND, all_of(conds[:mid]), all_of(conds[mid:]), T.BOOL)


def element_of(source: B.Source) -> tuple[B.Scope, str, str]:
    """A source's element scope, the element column holding the owner's key, and the
    element's time column ("" for a relation's rows, which have no time)."""
    if isinstance(source, B.StreamSource):
        return B.Scope(B.ScopeKind.EVENT, source.stream), source.column, source.time
    return B.Scope(B.ScopeKind.ENTITY, source.target), source.via, ""


def env_type(env: _Env, cid: L.ColumnId) -> Type:
    return env.types.get(cid, T.NULL)


def _range(time: L.LExpr, lo: dt.datetime | None, hi: dt.datetime) -> L.LExpr:
    upper = L.LBinary(B.BinOp.LT, time, L.LLit(hi, T.TIMESTAMP), T.BOOL)
    if lo is None:
        return upper
    lower = L.LBinary(B.BinOp.GE, time, L.LLit(lo, T.TIMESTAMP), T.BOOL)
    return L.LBinary(B.BinOp.AND, lower, upper, T.BOOL)
