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

{#- Dimensions of the stratum key besides the split (var stratify_by), checked: 'type' must be one
    of them (every positive type gets negatives of its type), every other one needs a
    `<dimension>_bin_edges` var of ascending numbers. -#}
{% macro stratify_dimensions() -%}
    {%- set dims = var('stratify_by') -%}
    {%- if 'type' not in dims -%}
        {{ exceptions.raise_compiler_error("stratify_by " ~ dims ~ " must include 'type': negatives are matched to "
            ~ "the positives' Tractor type so that no type is found only among lenses.") }}
    {%- endif -%}
    {%- for dim in dims if dim != 'type' -%}
        {%- set edges = var(dim ~ '_bin_edges', none) -%}
        {%- if edges is none or edges | length == 0 or edges != edges | sort -%}
            {{ exceptions.raise_compiler_error("stratify_by lists '" ~ dim ~ "' but the var " ~ dim
                ~ "_bin_edges is missing, empty or not ascending (got " ~ edges ~ "). Set it, e.g. --vars '{"
                ~ dim ~ "_bin_edges: [a, b, c]}'.") }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(dims) }}
{%- endmacro %}

{#- 0-based index of the half-open bin [e_i, e_i+1) holding `expr` (0 below the first edge, so
    bin_label order = index order); null stays null. -#}
{% macro bin_index(expr, edges) -%}
    case
        when {{ expr }} is null then null
        {%- for i in range(edges | length) %}
        when {{ expr }} < {{ edges[i] }} then {{ i }}
        {%- endfor %}
        else {{ edges | length }}
    end
{%- endmacro %}

{#- Stratum key: split | type bin | <dim>:<bin label> for every other dimension of stratify_by
    (default 'train|SER|nobs_z:3-5|psfsize_z:1.1-1.3'). `rel` is the relation alias holding the
    dimension columns. -#}
{% macro stratum_key(split, type_bin, rel) -%}
    {{ split }} || '|' || {{ type_bin }}
    {%- for dim in stratify_dimensions() if dim != 'type' %}
        || '|{{ dim }}:' || {{ bin_label(rel ~ '.' ~ dim, var(dim ~ '_bin_edges')) }}
    {%- endfor %}
{%- endmacro %}

{#- Bin indices of the non-type stratum dimensions, in stratify_by order, as an integer list: the
    N1 top-up measures how far two strata are apart by the sum of |index differences|. -#}
{% macro stratum_bin_indices(rel) -%}
    {%- set indices = [] -%}
    {%- for dim in stratify_dimensions() if dim != 'type' -%}
        {%- do indices.append(bin_index(rel ~ '.' ~ dim, var(dim ~ '_bin_edges'))) -%}
    {%- endfor -%}
    {{ int_array(indices) }}
{%- endmacro %}

{#- Bin steps between two stratum_bin_indices lists. -#}
{% macro bin_distance(a, b) -%}
    {{ abs_diff_sum(a, b) }}
{%- endmacro %}

{#- The N2 categories a preset may define, and the pool columns its min_/max_ cuts may use. -#}
{% macro n2_known_categories() -%}
    {{ return(['ring_proxy', 'spiral_proxy', 'edge_on_proxy', 'merger_proxy', 'blue_clumpy_proxy',
               'agn_host_proxy', 'large_galaxy_proxy']) }}
{%- endmacro %}

{% macro _n2_cut_columns() -%}
    {{ return(['shape_r', 'ellipticity', 'flux_r', 'mag_r_dered', 'g_minus_r', 'w1_minus_w2_vega',
               'mag_w2_vega', 'snr_w1', 'snr_w2']) }}
{%- endmacro %}

{#- The active N2 preset (var n2_definitions from n2_presets), checked: known categories only, every
    prioritised category has cuts, every cut key is known. -#}
{% macro n2_preset() -%}
    {%- set presets = var('n2_presets') -%}
    {%- set name = var('n2_definitions') -%}
    {%- if name not in presets -%}
        {{ exceptions.raise_compiler_error("n2_definitions '" ~ name ~ "' is not a preset of n2_presets (known: "
            ~ presets.keys() | list | join(', ') ~ ").") }}
    {%- endif -%}
    {%- set preset = presets[name] -%}
    {%- for category in preset['priority'] -%}
        {%- if category not in n2_known_categories() -%}
            {{ exceptions.raise_compiler_error("n2 preset '" ~ name ~ "': unknown category '" ~ category
                ~ "' (known: " ~ n2_known_categories() | join(', ') ~ ").") }}
        {%- endif -%}
        {%- if category not in preset -%}
            {{ exceptions.raise_compiler_error("n2 preset '" ~ name ~ "' lists '" ~ category
                ~ "' in priority but defines no cuts for it.") }}
        {%- endif -%}
        {%- for key in preset[category] -%}
            {%- set column = key[4:] if key[:4] in ['min_', 'max_'] else none -%}
            {%- if key not in ['types', 'ser_min_sersic', 'ser_max_sersic', 'radius_arcsec', 'min_flux_ratio']
                and column not in _n2_cut_columns() -%}
                {{ exceptions.raise_compiler_error("n2 preset '" ~ name ~ "', category '" ~ category
                    ~ "': unknown cut '" ~ key ~ "' (use types, ser_min_sersic, ser_max_sersic, or min_/max_ on "
                    ~ _n2_cut_columns() | join(', ') ~ ").") }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(preset) }}
{%- endmacro %}

{#- The active preset's priority list (n2_category order). -#}
{% macro n2_priority() -%}
    {{ return(n2_preset()['priority']) }}
{%- endmacro %}

{#- Boolean SQL for one N2 category of the active preset over relation alias `rel` (false when the
    preset does not use the category). merger_proxy also needs `merger_flag`, true where the
    merger crossmatch found a comparable neighbour. -#}
{% macro n2_flag(category, rel, merger_flag='false') -%}
    {%- set preset = n2_preset() -%}
    {%- if category not in preset['priority'] -%}
        false
    {%- else -%}
        {%- set cuts = preset[category] -%}
        {%- set terms = [] -%}
        {%- if category == 'merger_proxy' %}{% do terms.append(merger_flag) %}{% endif -%}
        {%- if 'types' in cuts -%}
            {%- do terms.append(rel ~ ".type in (" ~ sql_string_list(cuts['types']) ~ ")") -%}
        {%- endif -%}
        {%- if 'ser_min_sersic' in cuts -%}
            {%- do terms.append("(" ~ rel ~ ".type != 'SER' or " ~ rel ~ ".sersic >= " ~ cuts['ser_min_sersic'] ~ ")") -%}
        {%- endif -%}
        {%- if 'ser_max_sersic' in cuts -%}
            {%- do terms.append("(" ~ rel ~ ".type != 'SER' or " ~ rel ~ ".sersic <= " ~ cuts['ser_max_sersic'] ~ ")") -%}
        {%- endif -%}
        {%- for key, value in cuts.items() | sort -%}
            {%- if key[:4] == 'min_' and key != 'min_flux_ratio' -%}
                {%- do terms.append(rel ~ "." ~ key[4:] ~ " >= " ~ value) -%}
            {%- elif key[:4] == 'max_' -%}
                {%- do terms.append(rel ~ "." ~ key[4:] ~ " <= " ~ value) -%}
            {%- endif -%}
        {%- endfor -%}
        coalesce({{ terms | join(' and ') if terms else 'true' }}, false)
    {%- endif -%}
{%- endmacro %}

{#- Quoted, comma-separated SQL list of strings. -#}
{% macro sql_string_list(values) -%}
    {%- for v in values %}'{{ v }}'{{ ", " if not loop.last }}{% endfor -%}
{%- endmacro %}

{#- Great-circle separation in arcsec (haversine, accurate at sub-milliarcsec scales); null if
    either position is null. -#}
{% macro angular_sep_arcsec(ra1, dec1, ra2, dec2) -%}
    7200 * degrees(asin(least(1, sqrt(
        power(sin(radians({{ dec2 }} - {{ dec1 }}) / 2), 2)
        + cos(radians({{ dec1 }})) * cos(radians({{ dec2 }}))
        * power(sin(radians({{ ra2 }} - {{ ra1 }}) / 2), 2)
    ))))
{%- endmacro %}

