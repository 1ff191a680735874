{#- AB magnitude from a flux in nanomaggies: m = 22.5 - 2.5 log10(f); null when f <= 0 or null,
    because a non-detection has no magnitude (a sentinel like 99 would poison cuts and means). -#}
{% macro nanomaggies_to_mag(flux) -%}
    case when ({{ flux }}) > 0 then 22.5 - 2.5 * log10({{ flux }}) end
{%- endmacro %}

{#- Galactic-extinction-corrected AB magnitude of band `band` from the sweep columns
    `<prefix>flux_<band>` and `<prefix>mw_transmission_<band>`: one definition for the sweeps view
    and for the models that derive it after a join (on a few rows instead of every sweep row). -#}
{% macro dereddened_mag(band, prefix='') -%}
    {{ nanomaggies_to_mag(prefix ~ 'flux_' ~ band ~ ' / nullif(' ~ prefix ~ 'mw_transmission_' ~ band ~ ', 0)') }}
{%- endmacro %}

{#- 5-sigma AB depth from an inverse-variance depth in 1/nanomaggy^2:
    m = -2.5 (log10(5 / sqrt(depth)) - 9). -#}
{% macro depth_to_mag(depth) -%}
    case when ({{ depth }}) > 0 then -2.5 * (log10(5 / sqrt({{ depth }})) - 9) end
{%- endmacro %}
