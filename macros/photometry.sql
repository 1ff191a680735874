{#- AB magnitude from a flux in nanomaggies: m = 22.5 - 2.5 log10(f); null when f <= 0 or null,
    because a non-detection has no magnitude (a sentinel like 99 would poison cuts and means). -#}
{% macro nanomaggies_to_mag(flux) -%}
    case when ({{ flux }}) > 0 then 22.5 - 2.5 * log10({{ flux }}) end
{%- endmacro %}

{#- 5-sigma AB depth from an inverse-variance depth in 1/nanomaggy^2:
    m = -2.5 (log10(5 / sqrt(depth)) - 9). -#}
{% macro depth_to_mag(depth) -%}
    case when ({{ depth }}) > 0 then -2.5 * (log10(5 / sqrt({{ depth }})) - 9) end
{%- endmacro %}
