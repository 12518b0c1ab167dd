# Generates jinja_cases.json for src/tokenizer/jinja/jinja_test.cc: each case's expected render
# comes from Python jinja2 configured as transformers does (tests/py/test_chat_template.py).
# Run: python3 tests/testdata/chat/gen_jinja_cases.py
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'py'))
from test_chat_template import reference_render
cases = [
 ("{{ 1 + 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 7 / 2 }}|{{ 1 / 3 }}", {}),
 ("{{ 1.0 }}|{{ 1e20 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 0.0001 }}|{{ 0.00001 }}|{{ 0.1 + 0.2 }}|{{ -0.0 }}|{{ 2.5|round }}|{{ 3.5|round }}|{{ 2.675|round(2) }}", {}),
 ("{{ none }}|{{ true }}|{{ [1, 'a', none, 2.0, true] }}|{{ {'k': [1, {'z': false}]} }}|{{ (1,) }}|{{ ('a', \"it's\") }}|{{ 'x\\ny' }}", {}),
 ("{{ ['a\\nb', 'c\\'d', \"e\\\"f\", 'g\\\\h'] }}", {}),
 ("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.cycle('a','b') }};{% endfor %}", {}),
 ("{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}", {}),
 ("{% for x in [] %}a{% else %}empty{% endfor %}|{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}", {}),
 ("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
 ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
 ("{% set x = 1 %}{% for i in [1,2] %}{{ x }}{% set x = x + 10 %}{{ x }}{% endfor %}{{ x }}", {}),
 ("{% set ns = namespace(a=1) %}{% for i in [1,2] %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}", {}),
 ("{% set a, b = 'xy' %}{{ b }}{{ a }}{% set c %}blk{{ 1 }}{% endset %}[{{ c }}]{% set d | upper %}up{% endset %}{{ d }}", {}),
 ("{% macro m(a, b=2, c='x') %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 3) }}|{{ m(1, c='z') }}|{{ m() }}", {}),
 ("{% macro w(t) %}<{{ t }}>{{ caller() }}</{{ t }}>{% endmacro %}{% call w('b') %}in{% endcall %}", {}),
 ("{% filter upper %}abc {{ 'd' }}{% endfilter %}|{% raw %}{{ x }}{% endraw %}|{# c #}x", {}),
 ("{{ 'a' if false }}|{{ 'a' if true else 'b' }}|{{ x or 'dflt' }}|{{ 0 and 1 }}|{{ not none }}|{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 'b' in 'abc' }}|{{ 2 not in [1] }}", {}),
 ("{{ 'abc'[::-1] }}|{{ [1,2,3,4][1:3] }}|{{ 'héllo'[1] }}|{{ 'héllo'[-2:] }}|{{ [1,2,3][-1] }}|{{ [1,2,3][::2] }}|{{ 'abcdef'[4:1:-1] }}", {}),
 ("{{ d.a }}|{{ d['a'] }}|{{ d.missing }}|{{ l[10] }}|{{ none.x }}", {"d": {"a": 1}, "l": [1]}),
 ("{{ '  x  '|trim }}|{{ 'ab'|upper }}|{{ 'AB'|lower }}|{{ 'hello world-foo(bar'|title }}|{{ 'hELLO'|capitalize }}|{{ [1,2]|length }}|{{ 'abc'|first }}|{{ [1,2]|last }}|{{ [1,2]|join('-') }}", {}),
 ("{{ x|default('d') }}|{{ ''|default('d', true) }}|{{ ''|d('e') }}|{{ 'aXbX'|replace('X', 'y') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 'ab'|list }}|{{ 12|string }}|{{ '42'|int }}|{{ '4.7'|int }}|{{ 'x'|int(7) }}|{{ '2.5'|float }}|{{ -3|abs }}", {}),
 ("{{ {'b': 1, 'A': 2}|dictsort }}|{{ {'b': 1, 'a': 2}|items|list }}|{{ [3,1,2]|sort }}|{{ ['b','A','c']|sort }}|{{ ['b','A','c']|sort(case_sensitive=true) }}|{{ [1,2]|sort(reverse=true) }}|{{ [1,2,1,'a','A']|unique|list }}", {}),
 ("{{ l|selectattr('r', 'equalto', 'u')|map(attribute='c')|join }}|{{ l|rejectattr('r', 'eq', 'u')|map(attribute='c')|list }}|{{ [1,2,3,4]|select('odd')|list }}|{{ [1,0,2]|reject|list }}|{{ ['a','b']|map('upper')|list }}|{{ l|selectattr('x')|list }}", {"l": [{"r": "u", "c": "1"}, {"r": "a", "c": "2", "x": True}, {"r": "u", "c": "3"}]}),
 ("{{ [1,2,3]|sum }}|{{ [3,1]|min }}|{{ ['a','B']|max }}|{{ [1,2,3]|reverse|list }}|{{ 'abc'|reverse }}|{{ '<a&\"'|e }}|{{ 'x'|safe }}|{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'one two, three'|wordcount }}|{{ 'ab'|center(6) }}|{{ [1,2,3]|batch(2)|list }}", {}),
 ("{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ 'é\\u2028<>&'|tojson }}|{{ [1.0, none, true]|tojson }}|{{ d|tojson(sort_keys=true) }}|{{ {}|tojson(indent=2) }}|{{ d|tojson(separators=(',', ':')) }}|{{ 'é'|tojson(ensure_ascii=true) }}", {"d": {"z": [1, 2.5, "x"], "a": {"b": None}}}),
 ("{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'a b'.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'ab'.startswith('a') }}|{{ 'ab'.endswith(('x', 'b')) }}|{{ 'abc'.find('c') }}|{{ 'abc'.rfind('z') }}|{{ 'hi {} {}'.format(1, 'x') }}|{{ '-'.join(['a','b']) }}|{{ 'aa'.count('a') }}|{{ 'hello world'.title() }}|{{ 'x'.upper() }}{{ 'Y'.lower() }}|{{ 'a b'.replace(' ', '_') }}", {}),
 ("{{ d.get('a') }}|{{ d.get('z', 5) }}|{{ d.get('z') }}|{{ d.keys()|list }}|{{ d.values()|list }}|{{ dict(a=1, b=2) }}|{{ dict([('x', 1)]) }}|{{ range(2, 8, 3)|list }}", {"d": {"a": 1}}),
 ("{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}{{ true is number }}{{ true is integer }}{{ 1 is integer }}{{ 1.0 is float }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is sequence }}{{ true is boolean }}{{ true is true }}{{ 0 is false }}{{ 3 is odd }}{{ 10 is divisibleby 5 }}{{ 1 is eq 1 }}{{ 1 is equalto 2 }}{{ 'a' is in 'ab' }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ range is callable }}{{ none is sameas none }}{{ 2 is gt 1 }}{{ 2 is le 1 }}", {}),
 ("  {% if true %}\n    x\n  {% endif %}\n{%- if true -%}\n  y  \n{%- endif %}\n  {%+ if true %}z{% endif %}\n{{- ' w ' -}}\n  {# c #}\n  {{ 1 }}\n", {}),
 ("a\n  {% for x in [1] %}\n  {{ x }}\n  {% endfor %}\nb {%- raw %} r {% endraw -%}\n  c\r\nd\n\n", {}),
 ("{{ 'a' ~ 1 ~ none ~ undefined_thing }}|{{ [1] + [2] }}|{{ 'ab' * 2 }}|{{ (1, 2) + (3,) }}|{{ -(3) }}|{{ - 2|abs }}|{{ 10 - 2 - 3 }}|{{ 2 * 3 + 4 }}|{{ 2 ** 3 ** 2 }}", {}),
 ("{{ 'a' 'b' }}|{{ \"\\x41\\u00e9\\t|\" }}|{{ '\\q' }}|{{ 1_000 }}|{{ 0.5e1 }}", {}),
 ("{% for m in messages %}{% generation %}[{{ m }}]{% endgeneration %}{% endfor %}", {"messages": ["a", "b"]}),
 ("{% if x %}a{% elif y %}b{% elif z %}c{% else %}d{% endif %}", {"z": 1}),
 ("{{ strftime_now('%Y-%m-%d %H:%M:%S %A %b') }}", {}),
 ("{{ 'héllo wörld ßtraße Ωμέγα привет'|upper }}|{{ 'ÀÉÎ ΣΑΣ ПРИВЕТ Ÿ'|lower }}|{{ 'élan vital'|title }}|{{ 'ÉCOLE'|capitalize }}", {}),
 ("{{ '%s=%d' % ('a', 3) }}|{{ '%(k)s!' % {'k': 'v'} }}|{{ '%05.1f|%-4s|%x' % (3.14159, 'ab', 255) }}|{{ 'x' % {} }}|{{ '%s' | format(5) }}", {}),
 ("{{ u is callable }}{{ u is sequence }}{{ 3.0 is even }}{{ 2.5 is divisibleby 0.5 }}|{{ [2, 1]|map('string')|join }}|{{ none|select|list }}", {}),

]
out = [{'template': src, 'vars': v, 'ok': ok, 'expected': res} for src, v in cases for ok, res in [reference_render(src, v)]]
Path(__file__).with_name('jinja_cases.json').write_text(json.dumps(out, ensure_ascii=False, indent=1) + '\n')
