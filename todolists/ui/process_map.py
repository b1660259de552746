"""The process map as an event model: steps (commands and automations), the events they record
and the TODO lists those events open and close, laid out in swimlanes along the process.

Everything comes from the registries (todolists.process.process_steps), so a list declared in
code is drawn with no other change. The layout is plain arithmetic on a graph of a dozen nodes;
the template (admin/todolists/view/process_map_svg.html) only draws what this computes.

Columns follow the flow: a node sits one column right of the furthest node that leads to it
(step -> event it records -> list it opens -> the list's automation -> ...). Closing arrows point
back and do not move anything. An event no declared step records is placed after the automation
of the list it closes (that automation presumably records it), and a step nothing leads to (an
operator's command) sits just before the first event it records.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable

from todolists.lists import registry as todo_lists
from todolists.process import StepNode, process_steps
from todolists.ui.status import ListStatus
from todolists.ui.verdict import Verdict

LANES = ("step", "event", "list")
LANE_TITLES = {
    "step": "Commands and automations",
    "event": "Events",
    "list": "TODO lists",
}
NODE_W, NODE_H = 176, 62
COLUMN_MIN = 56
"""Nodes in different lanes may share x: a column is narrower than a node."""
GAP_X, GAP_Y = 22, 12
LANE_PAD, LANE_LABEL_W = 14, 24
MARGIN = 8


@dataclasses.dataclass
class Node:
    id: str
    lane: str
    kind: str
    """command, automation, event or list"""
    title: str
    url: str
    subtitle: str = ""
    state: str = ""
    """ok, stuck, halted, paused, failing ("" for events and commands)"""
    state_words: str = ""
    counts: str = ""
    rank: int = 0
    x: int = 0
    y: int = 0
    ports: dict[tuple[tuple[str, str], str], int] = dataclasses.field(default_factory=dict)
    """Where each edge meets the node: (edge key, \"in\" or \"out\") -> x offset."""
    """(edge key, "in"/"out") -> x offset: arrows spread over the node's edge instead of meeting."""

    @property
    def lines(self) -> list[str]:
        return textwrap.wrap(self.title, 24)[:2]

    @property
    def cx(self) -> int:
        return self.x + NODE_W // 2


@dataclasses.dataclass(frozen=True)
class Edge:
    source: Node
    target: Node
    kind: str
    """records, opens, closes, works"""

    @property
    def path(self) -> str:
        s, t = self.source, self.target
        if t.y > s.y + NODE_H // 2 or t.y + NODE_H < s.y:  # another lane: leave bottom/top
            down = t.y > s.y
            x1 = s.x + s.ports.get((self.key, "out"), NODE_W // 2)
            x2 = t.x + t.ports.get((self.key, "in"), NODE_W // 2)
            y1, y2 = s.y + (NODE_H if down else 0), t.y + (0 if down else NODE_H)
            dy = (y2 - y1) / 2
            return f"M{x1},{y1} C{x1},{y1 + dy:.0f} {x2},{y2 - dy:.0f} {x2},{y2}"
        x1, y1, x2, y2 = s.x + NODE_W, s.y + NODE_H // 2, t.x, t.y + NODE_H // 2
        return f"M{x1},{y1} C{x1 + 30},{y1} {x2 - 30},{y2} {x2},{y2}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.source.id, self.target.id)

    @property
    def label(self) -> str:
        return {"records": "records", "opens": "opens", "closes": "closes", "works": "worked by"}[self.kind]


@dataclasses.dataclass(frozen=True)
class Lane:
    name: str
    title: str
    y: int
    height: int


@dataclasses.dataclass(frozen=True)
class ProcessMap:
    nodes: list[Node]
    edges: list[Edge]
    lanes: list[Lane]
    width: int
    height: int
    arrow_kinds = ("records", "opens", "closes", "works")

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


def _node_state(status: ListStatus | None, verdict: Verdict | None) -> tuple[str, str]:
    """A list's state as (css class, words): the verdict's, the same the dashboard shows."""
    if status is None:
        return "ok", "ok"
    if verdict is None:
        return status.state, status.state.upper() if status.state != "ok" else "ok"
    return verdict.list_state(status.name)


@dataclasses.dataclass
class _Graph:
    """The nodes and arrows as they are found, before they are ranked and placed."""

    status: dict[str, ListStatus]
    urls: dict[str, Callable[[str], str]]
    verdict: Verdict | None
    nodes: dict[str, Node] = dataclasses.field(default_factory=dict)
    edges: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def add(self, node: Node) -> Node:
        return self.nodes.setdefault(node.id, node)

    def event(self, type_: str) -> str:
        url = self.urls["event"](type_)
        return self.add(Node(id=f"event:{type_}", lane="event", kind="event", title=type_, url=url)).id

    def todo_list(self, name: str) -> str:
        s = self.status.get(name)
        state, words = _node_state(s, self.verdict)
        return self.add(
            Node(
                id=f"list:{name}",
                lane="list",
                kind="list",
                title=s.title if s else name,
                subtitle=name,
                url=self.urls["list"](name),
                state=state,
                state_words=words,
                counts=f"{s.open} open · {s.parked} parked" if s else "",
            )
        ).id

    def step(self, step: StepNode) -> None:
        sid = f"step:{step.name}"
        if step.works:
            s = self.status.get(step.works)
            state, words = _node_state(s, self.verdict)
            self.add(
                Node(id=sid, lane="step", kind="automation", title=step.name, subtitle="automation",
                     url=self.urls["list"](step.works), state=state, state_words=words,
                     counts=f"{s.retrying} retrying · {s.due} due" if s else "")
            )  # fmt: skip
            self.edges.append((self.todo_list(step.works), sid, "works"))
        else:
            self.add(Node(id=sid, lane="step", kind=step.kind, title=step.name,
                          subtitle=f"{step.kind} · {step.actor}" if step.actor else step.kind,
                          url=self.urls["step"](",".join(e.type for e in step.events))))  # fmt: skip
        self.edges += [(sid, self.event(e.type), "records") for e in step.events]


def process_map(
    *,
    steps: list[StepNode] | None = None,
    lists: list[ListStatus],
    urls: dict[str, Callable[[str], str]],
    verdict: Verdict | None = None,
) -> ProcessMap:
    """Nodes, arrows and lanes with coordinates. `urls` maps "list", "event" and "step" to a
    function giving a node's link target."""
    steps = process_steps() if steps is None else steps
    graph = _Graph(status={s.name: s for s in lists}, urls=urls, verdict=verdict)
    for step in steps:
        graph.step(step)
    # Every list's opening and closing events, also those no declared step records.
    for todo in todo_lists.all():
        graph.edges += [(graph.event(e), graph.todo_list(todo.name), "opens") for e in todo.opened_by]
        graph.edges += [(graph.event(e), graph.todo_list(todo.name), "closes") for e in todo.closed_by]
    nodes, edges = graph.nodes, graph.edges
    _rank(nodes, edges, steps)
    lanes, width, height = _place(list(nodes.values()))
    drawn = [Edge(nodes[a], nodes[b], kind) for a, b, kind in dict.fromkeys(edges)]
    _spread_ports(drawn)
    return ProcessMap(
        nodes=sorted(nodes.values(), key=lambda n: (LANES.index(n.lane), n.rank, n.title)),
        edges=drawn,
        lanes=lanes,
        width=width,
        height=height,
    )


def _rank(nodes: dict[str, Node], edges: list[tuple[str, str, str]], steps: list[StepNode]) -> None:
    forward = [(a, b) for a, b, kind in edges if kind != "closes"]
    recorded = {b for a, b, kind in edges if kind == "records"}
    automation_of = {f"list:{s.works}": f"step:{s.name}" for s in steps if s.works}
    # An event no step records follows the automation of the list it closes.
    forward += [
        (automation_of[b], a)
        for a, b, kind in edges
        if kind == "closes" and a not in recorded and b in automation_of
    ]
    rank = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):  # longest path; a cycle stops growing after len(nodes) rounds
        changed = False
        for a, b in forward:
            if rank[b] < rank[a] + 1:
                rank[b], changed = rank[a] + 1, True
        if not changed:
            break
    # What touches no list (the runner's records, an operator's retry or park, on any list) goes
    # after the flow, at the right.
    on_lists = {a for a, b, _ in edges if b.startswith("list:")} | {
        b for a, b, _ in edges if a.startswith("list:")
    }
    on_lists |= {a for a, b, kind in edges if kind == "records" and b in on_lists}
    end = max(rank.values(), default=0) + 1
    for a, b, kind in edges:
        if kind == "records" and a not in on_lists:
            rank[a], rank[b] = end, max(rank[b], end + 1) if b not in on_lists else rank[b]
    led_to = {b for _, b in forward}
    for n in nodes.values():
        succ = [rank[b] for a, b in forward if a == n.id]
        if n.id not in led_to and succ and n.lane == "step":
            rank[n.id] = max(0, min(succ) - 1)  # an operator's command sits by what it records
        n.rank = rank[n.id]


def _spread_ports(edges: list[Edge]) -> None:
    for side, here, there in (("out", "source", "target"), ("in", "target", "source")):
        by_node: dict[str, list[Edge]] = {}
        for e in edges:
            by_node.setdefault(getattr(e, here).id, []).append(e)
        for group in by_node.values():
            group.sort(key=lambda e: getattr(e, there).x)
            node = getattr(group[0], here)
            for i, e in enumerate(group):
                node.ports[(e.key, side)] = round((i + 1) * NODE_W / (len(group) + 1))


def _place(nodes: list[Node]) -> tuple[list[Lane], int, int]:
    ranks = sorted({n.rank for n in nodes})
    # x per rank: at least COLUMN_MIN right of the previous rank, and clear of the same lane's
    # previous node.
    x_of: dict[int, int] = {}
    last_in_lane: dict[str, int] = {}
    x = MARGIN + LANE_LABEL_W + LANE_PAD
    for r in ranks:
        lanes_here = {n.lane for n in nodes if n.rank == r}
        if x_of:
            x = max(
                [x + COLUMN_MIN]
                + [last_in_lane[ln] + NODE_W + GAP_X for ln in lanes_here if ln in last_in_lane]
            )
        x_of[r] = x
        for ln in lanes_here:
            last_in_lane[ln] = x
    lanes, y = [], MARGIN
    for ln in LANES:
        members = [n for n in nodes if n.lane == ln]
        stack: dict[int, int] = {}
        for n in sorted(members, key=lambda n: (n.rank, n.title)):
            n.x = x_of[n.rank]
            n.y = y + LANE_PAD + stack.get(n.rank, 0) * (NODE_H + GAP_Y)
            stack[n.rank] = stack.get(n.rank, 0) + 1
        rows = max(stack.values(), default=1)
        height = 2 * LANE_PAD + rows * NODE_H + (rows - 1) * GAP_Y
        lanes.append(Lane(name=ln, title=LANE_TITLES[ln], y=y, height=height))
        y += height + GAP_Y
    width = max((n.x + NODE_W for n in nodes), default=0) + LANE_PAD + MARGIN
    return lanes, width, y - GAP_Y + MARGIN
