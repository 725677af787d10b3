"""Every way a template can allocate or spin is bounded: refused with a clear error, fast, and
without the memory it asked for (measured in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from shared.nodes.template_limits import MAX_VALUE_BYTES
from shared.nodes.templating import TemplateError, check_syntax, render

CONTEXT = {"trigger": {"body": {"n": 3, "text": "abc"}}, "steps": {}, "run": {}}

# Each builds hundreds of MB (or runs for hours) when unbounded.
BOMBS = {
    "printf-width": "{{ '%400000000d' % 1 }}",
    "printf-precision": "{{ '%.400000000f' % 1.0 }}",
    "printf-star": "{{ '%*d' % (400000000, 1) }}",
    "printf-mapping": "{{ ('%(a)s' * 1000) % {'a': 'y' * 1000000} }}",
    "center-method": "{{ 'x'.center(400000000) }}",
    "ljust": "{{ 'x'.ljust(400000000) }}",
    "rjust": "{{ 'x'.rjust(400000000) }}",
    "zfill": "{{ 'x'.zfill(400000000) }}",
    "center-filter": "{{ 'x' | center(400000000) }}",
    "format-width": "{{ '{:400000000}'.format(1) }}",
    "format-nested-width": "{{ '{:{}}'.format(1, 400000000) }}",
    "format-map": "{{ '{a:400000000}'.format_map({'a': 1}) }}",
    "format-filter": "{{ '%400000000s' | format('x') }}",
    "replace-method": "{{ ('x' * 1000000).replace('x', 'y' * 100) }}",
    "replace-empty": "{{ ('x' * 100).replace('', 'y' * 1000000) }}",
    "replace-filter": "{{ ('x' * 1000000) | replace('x', 'y' * 100) }}",
    "repeat-list": "{{ ['x' * 1000000] * 1000 }}",
    "join-filter": "{{ range(100000) | join(',' * 1000) }}",
    "join-method": "{{ (',' * 1000).join(range(100000) | map('string') | list) }}",
    "tilde-doubling": (
        "{% set ns = namespace(a='x') %}{% for i in range(40) %}"
        "{% set ns.a = ns.a ~ ns.a %}{% endfor %}{{ ns.a | length }}"
    ),
    "plus-doubling": (
        "{% set ns = namespace(a='x') %}{% for i in range(40) %}"
        "{% set ns.a = ns.a + ns.a %}{% endfor %}{{ ns.a | length }}"
    ),
    "macro-doubling": (
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s | length }}"
        "{% endif %}{% endmacro %}{{ d('x', 40) }}"
    ),
    "int-squaring": (
        "{% set ns = namespace(a=3) %}{% for i in range(40) %}"
        "{% set ns.a = ns.a * ns.a %}{% endfor %}{{ ns.a > 1 }}"
    ),
    "power": "{{ (2 ** 10000) ** 10000 }}",
    "to-bytes": "{{ (1).to_bytes(400000000, 'big') | length }}",
    "expandtabs": "{{ ('\t' * 1000).expandtabs(1000000) }}",
    "translate": "{{ ('a' * 1000000).translate({97: 'x' * 100}) | length }}",
    "batch": "{{ [1] | batch(400000000, 'x') | list | length }}",
    "slice": "{{ [1] | slice(400000000, 'x') | list | length }}",
    "indent": "{{ ('x\n' * 1000000) | indent(1000) | length }}",
    "wordwrap": "{{ ('x ' * 1000000) | wordwrap(1, wrapstring='y' * 100) | length }}",
    "lipsum": "{{ lipsum(100000, max=10000) | length }}",
    "wide-tojson": "{{ (['x' * 100000] * 1000) | tojson | length }}",
    "wide-output": "{{ dict.fromkeys(range(100000), 'x' * 1000) }}",
    "output-in-loop": "{% for i in range(1000) %}{{ 'x' * 1000000 }}{% endfor %}",
    "text-in-nested-loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxxxxxxxx"
        "{% endfor %}{% endfor %}"
    ),
    "captured-block": (
        "{% set b %}{% for i in range(100000) %}{% for j in range(1000) %}xxxxxxxxxxxxxxxx"
        "{% endfor %}{% endfor %}{% endset %}{{ b | length }}"
    ),
    "empty-nested-loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "loop-over-a-list": (
        "{% set x = range(100000) | list %}{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}"
    ),
    "recursive-loop": (
        "{% for x in range(10) recursive %}{% if loop.depth0 < 3 %}{{ loop(range(100000)) }}"
        "{% endif %}{% endfor %}"
    ),
}


LIMIT_MESSAGE = r"would (build|have)|limit|longer than|at most|in total|too large"


class TestBombs:
    @pytest.mark.parametrize("source", BOMBS.values(), ids=BOMBS.keys())
    def test_refused_at_run_time_with_a_clear_error(self, source: str) -> None:
        started = time.monotonic()
        with pytest.raises(TemplateError, match=LIMIT_MESSAGE):
            render({"a": source}, CONTEXT)
        # The 2-second deadline is the backstop; most are refused before building anything.
        assert time.monotonic() - started < 3.5

    @pytest.mark.parametrize("source", BOMBS.values(), ids=BOMBS.keys())
    def test_saving_compiles_without_running_anything(self, source: str) -> None:
        started = time.monotonic()
        assert check_syntax({"a": source}) == []
        assert time.monotonic() - started < 0.5

    def test_memory_stays_flat_across_every_bomb(self) -> None:
        # A fresh process, so its peak RSS is the bombs' and nothing else's.
        script = (
            "import json, resource, sys\n"
            "from shared.nodes.templating import TemplateError, check_syntax, render\n"
            "bombs = json.loads(sys.stdin.read())\n"
            "render('{{ 1 }}', {})\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "for source in bombs:\n"
            "    check_syntax(source)\n"
            "    try:\n"
            "        render(source, {})\n"
            "    except TemplateError:\n"
            "        pass\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(list(BOMBS.values())),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        grown_mb = int(done.stdout.strip())
        # Unbounded, the first bomb alone takes 400 MB; the limit on one value is 16 MiB.
        assert grown_mb < 3 * MAX_VALUE_BYTES // (1024 * 1024), done.stdout


class TestWhatStillWorks:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("{{ '%5d' % 42 }}", "   42"),
            ("{{ '{:>6}'.format('ab') }}", "    ab"),
            ("{{ 'ab' | center(6) }}", "  ab  "),
            ("{{ 'a-b-c'.replace('-', '+') }}", "a+b+c"),
            ("{{ ['a', 'b'] | join(', ') }}", "a, b"),
            ("{{ ', '.join(['a', 'b']) }}", "a, b"),
            ("{{ 'x' ~ 1 ~ 'y' }}", "x1y"),
            ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
            ("{{ range(3) | map('string') | join }}", "012"),
            ("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}", "ABab"),
            ("{{ 7 | string | zfill(3) if false else '7'.zfill(3) }}", "007"),
            ("{{ trigger.body.text | upper }}", "ABC"),
            ("{{ trigger.body | tojson }}", '{"n": 3, "text": "abc"}'),
        ],
    )
    def test_everyday_templates(self, source: str, expected: str) -> None:
        assert render(source, CONTEXT) == expected

    def test_big_integers_are_computed_exactly(self) -> None:
        assert render("{{ 2 ** 70 }}", CONTEXT) == 2**70

    def test_a_body_near_the_limit_can_be_printed(self) -> None:
        body = {"items": ["x" * 1000] * 9000}  # about 9 MB as JSON
        context = {**CONTEXT, "trigger": {"body": body}}
        assert len(render("{{ trigger.body | tojson }}", context)) > 9_000_000
        assert render("{{ trigger.body }}", context) == body

    def test_every_template_of_a_node_shares_one_budget(self) -> None:
        # Each alone fits; together they are more than one render may build.
        params = {f"p{i}": "{{ 'x' * 10000000 }}" for i in range(10)}
        with pytest.raises(TemplateError, match="in total"):
            render(params, CONTEXT)
