{#- One BIGINT per Tractor source, readable in decimal: release * 1e12 + brickid * 1e6 + objid.
    DR10 has ~660K bricks and far fewer than 1e6 sources per brick, so the packing is injective;
    validate_sweeps() rejects inputs that would break it. -#}
{% macro galaxy_id(release, brickid, objid) -%}
    (cast({{ release }} as bigint) * 1000000000000
        + cast({{ brickid }} as bigint) * 1000000
        + cast({{ objid }} as bigint))
{%- endmacro %}

{#- The sweep files a build reads, as the source dr10.sweeps resolves them (its meta.sweeps_glob):
    one resolution on the dbt side. Empty while parsing (no graph yet). -#}
{% macro sweeps_location() -%}
    {%- set sweeps = graph.get('sources', {}).get('source.stronglens.dr10.sweeps') -%}
    {{ return(sweeps.meta.sweeps_glob if sweeps else '') }}
{%- endmacro %}

{#- The Legacy Survey cutout URL of a position, from the cutout_url_template var: the one URL builder
    (cutout_manifest.cutout_url is what the legacysurvey source requests). RA/Dec with 7 decimals:
    1e-7 deg = 0.36 mas, far below the 262 mas pixel. -#}
{% macro cutout_url(ra, dec) -%}
    {%- set template = var('cutout_url_template')
        | replace('{layer}', var('cutout_layer'))
        | replace('{pixscale}', var('cutout_pixscale') | string)
        | replace('{bands}', var('cutout_bands'))
        | replace('{size}', var('cutout_size') | string) -%}
    {%- set parts = template.split('{ra}') -%}
    {%- set tail = parts[1].split('{dec}') -%}
    '{{ parts[0] }}' || printf('%.7f', {{ ra }}) || '{{ tail[0] }}'
        || printf('%.7f', {{ dec }}) || '{{ tail[1] }}'
{%- endmacro %}
