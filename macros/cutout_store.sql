{#- The cutout store is keyed by content, never by split: a cutout lives at
    <cutout_params_key()>/<sample_id>.npz under the cutout root. The key is a hash of every var that
    changes the pixels (source, size, scale, bands, layer, URL, seed, coadd root, neighbour radius),
    so builds with the same parameters share files, different parameters never overwrite each
    other, and a sample's split is only a column of the tables. `stronglens gc` removes the files
    that no retained build references. A var that changes rendered pixels belongs in this list.
    For the synthetic source the renderer's own identity (its revision and pixel-shaping defaults,
    stronglens_renderer_fingerprint() of the dbt plugin) is hashed in too: a changed renderer
    renders afresh into a new folder instead of reusing files drawn by the old one. -#}
{% macro cutout_params_key() -%}
    {%- set params = {} -%}
    {%- for name in [
        'cutout_source', 'cutout_size', 'cutout_pixscale', 'cutout_bands', 'cutout_layer',
        'cutout_url_template', 'cutout_seed', 'cutout_coadd_root', 'cutout_neighbour_radius_arcsec'
    ] -%}
        {%- do params.update({name: var(name, none)}) -%}
    {%- endfor -%}
    {%- if var('cutout_source', none) == 'synthetic' and execute -%}
        {%- set renderer = run_query('select stronglens_renderer_fingerprint()').columns[0].values()[0] -%}
        {%- do params.update({'renderer': renderer}) -%}
    {%- endif -%}
    {{ return(local_md5(tojson(params, sort_keys=true))[:16]) }}
{%- endmacro %}
