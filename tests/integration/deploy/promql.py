"""PromQL helpers of the deploy tests: Grafana variables and the metric names an expression reads."""

from __future__ import annotations

import promql_parser

# Values the deploy tests give to Grafana's variables before sending a panel's query to Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$customer": ".*"}


def with_variables(expression: str) -> str:
    """Replace Grafana's variables in a panel's query with fixed values."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


def metric_names(expression: str) -> set[str]:
    """Return the metric names a PromQL expression selects."""
    names: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        elif isinstance(node, promql_parser.MatrixSelector):
            visit(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            visit(node.lhs)
            visit(node.rhs)
        elif isinstance(node, promql_parser.AggregateExpr):
            visit(node.expr)
            if node.param is not None:
                visit(node.param)
        elif isinstance(node, promql_parser.Call):
            for argument in node.args:
                visit(argument)
        elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
            visit(node.expr)

    visit(promql_parser.parse(expression))
    return names
