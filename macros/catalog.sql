{#- Building blocks of the catalog models: pool cuts, binning, splits and N2 flags, each driven by
    dbt_project.yml vars so that a build is fully described by the vars build_runs records. -#}

{#- True when none of the listed MASKBITS bits is set. -#}
{% macro maskbits_clear(column, bits) -%}
    ((cast({{ column }} as bigint) & {{ _bitmask(bits) }}) = 0)
{%- endmacro %}

{% macro _bitmask(bits) -%}
    {%- set ns = namespace(mask=0) -%}
    {%- for bit in bits -%}
        {%- set ns.mask = ns.mask + 2 ** (bit | int) -%}
    {%- endfor -%}
    {{ ns.mask }}
{%- endmacro %}

{#- Label of the half-open bin [e_i, e_i+1) holding `expr`, for ascending edges; values below the
    first edge get '<e0', at or above the last '>=eN', null stays null. Labels sort by bin. -#}
{% macro bin_label(expr, edges) -%}
    case
        when {{ expr }} is null then null
        when {{ expr }} < {{ edges[0] }} then '<{{ edges[0] }}'
        {%- for i in range(edges | length - 1) %}
        when {{ expr }} < {{ edges[i + 1] }} then '{{ edges[i] }}-{{ edges[i + 1] }}'
        {%- endfor %}
        else '>={{ edges[-1] }}'
    end
{%- endmacro %}

{#- Split of a HEALPix pixel, exactly as stronglens.hashing.assign_split: hash the text
    '<healpix>_<seed>' to [0, 1), walk the allocations sorted by split name cumulatively, first
    h < cumulative wins, else 'train'. -#}
{% macro assign_split(healpix, seed, allocations) -%}
    {%- set ns = namespace(cumulative=0.0) -%}
    case
        {%- for name in allocations | sort %}
        {%- set ns.cumulative = ns.cumulative + allocations[name] %}
        when {{ sha256_unit_interval("cast(" ~ healpix ~ " as string) || '_" ~ seed ~ "'") }} < {{ ns.cumulative }}
            then '{{ name }}'
        {%- endfor %}
        else 'train'
    end
{%- endmacro %}

{#- Stratum key: split | type bin | nobs_z bin | psfsize_z bin. -#}
{% macro stratum_key(split, type_bin, nobs_z, psfsize_z) -%}
    {{ split }} || '|' || {{ type_bin }}
        || '|nobs_z:' || {{ bin_label(nobs_z, var('nobs_z_bin_edges')) }}
        || '|psfsize_z:' || {{ bin_label(psfsize_z, var('psfsize_z_bin_edges')) }}
{%- endmacro %}

{#- Quoted, comma-separated SQL list of strings. -#}
{% macro sql_string_list(values) -%}
    {%- for v in values %}'{{ v }}'{{ ", " if not loop.last }}{% endfor -%}
{%- endmacro %}
