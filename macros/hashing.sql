{#-
  Deterministic, engine-independent hashes. Both have a Python reference in
  python/stronglens/hashing.py, and tests prove SQL == Python on random and edge-case keys.
-#}

{#- Unit-interval hash of a string, as the split reference does it:
    int.from_bytes(sha256(text).digest()[:4], "big") / 2**32. Used once per HEALPix pixel (not per
    galaxy: sha256 runs ~3M rows/s, the pixels number tens of thousands). -#}
{% macro sha256_unit_interval(text_expr) -%}
    {{ return(adapter.dispatch('sha256_unit_interval', 'stronglens')(text_expr)) }}
{%- endmacro %}

{% macro default__sha256_unit_interval(text_expr) -%}
    cast(('0x' || left(sha256({{ text_expr }}), 8)) as bigint) / 4294967296.0
{%- endmacro %}

{% macro spark__sha256_unit_interval(text_expr) -%}
    {#- a DOUBLE divisor: 4294967296.0 is a DECIMAL literal in Spark, which would round the result -#}
    cast(conv(substr(sha2({{ text_expr }}, 256), 1, 8), 16, 10) as bigint) / 4294967296e0
{%- endmacro %}

{#- Integer division of non-negative BIGINTs (DuckDB's `/` is float division). -#}
{% macro int_div(numerator, denominator) -%}
    {{ return(adapter.dispatch('int_div', 'stronglens')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__int_div(numerator, denominator) -%}
    (({{ numerator }}) // ({{ denominator }}))
{%- endmacro %}

{% macro spark__int_div(numerator, denominator) -%}
    div({{ numerator }}, {{ denominator }})
{%- endmacro %}

{#- x^5 mod P for x in [0, P), P = 2^31 - 1. Since gcd(5, P - 1) = 1 this is a permutation of
    [0, P): strongly non-linear yet collision-free. Every product stays below 2^62. -#}
{% macro _pow5_mod_p(x) -%}
    {%- set p = 2147483647 -%}
    {%- set x2 = '((' ~ x ~ ') * (' ~ x ~ ') % ' ~ p ~ ')' -%}
    {%- set x4 = '(' ~ x2 ~ ' * ' ~ x2 ~ ' % ' ~ p ~ ')' -%}
    ({{ x4 }} * ({{ x }}) % {{ p }})
{%- endmacro %}

{#- Sampling order hash of a non-negative galaxy key and seed, an integer in [0, P), P = 2^31 - 1:
      x0 = (k mod P + (k div P) * 40692 + seed * 69621) mod P
      x1 = (x0 * 48271 + 12345) mod P
      h  = ((x1^5 mod P) * 69621 + 54321) mod P
    Pure integer arithmetic, identical on any SQL engine, several times faster than md5 per row.
    Ties (possible among 10^8 keys only through x0) are broken by the key itself downstream. -#}
{% macro sample_hash(key, seed) -%}
    {%- set p = 2147483647 -%}
    {%- set x0 -%}
        ((({{ key }}) % {{ p }} + {{ int_div(key, p) }} * 40692 + cast({{ seed }} as bigint) * 69621) % {{ p }})
    {%- endset -%}
    {%- set x1 = '((' ~ x0 ~ ') * 48271 + 12345) % ' ~ p -%}
    (({{ _pow5_mod_p(x1) }} * 69621 + 54321) % {{ p }})
{%- endmacro %}
