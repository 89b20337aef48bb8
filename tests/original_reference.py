"""The original ClusterWork's expansion and result flattening, for differential tests.

Copied from gregorgebhardt/cluster_work, cluster_work.py at commit 6acbb6d (modified BSD license,
Copyright 2017 Gregor Gebhardt), changed only where Python 3.10 requires it (`collections.abc`) and to
take the already loaded and merged documents instead of a file. Do not "fix" anything here: it is the
reference that cluster_work is compared against.
"""
import collections.abc
import itertools
import os
import re
from copy import deepcopy


def flatten_dict(d, parent_key='', sep='_'):
    items = []
    for k, v in d.items():
        new_key = parent_key + sep + k if parent_key else k
        if isinstance(v, collections.abc.MutableMapping):
            items.extend(flatten_dict(v, new_key, sep=sep).items())
        elif isinstance(v, collections.abc.MutableSequence):
            keys = map(lambda i: new_key + "_" + str(i), range(len(v)))
            items.extend(zip(keys, v))
        else:
            items.append((new_key, v))
    return dict(items)


def flatten_dict_to_tuple_keys(d):
    flat_dict = {}
    for k, v in d.items():
        if isinstance(v, collections.abc.MutableMapping):
            sub_dict = flatten_dict_to_tuple_keys(v)
            flat_dict.update({(k, *sk): sv for sk, sv in sub_dict.items()})

        elif isinstance(v, collections.abc.MutableSequence):
            flat_dict[(k,)] = v

    return flat_dict


def insert_deep_dictionary(d, t, value):
    if type(t) is tuple:
        if len(t) == 1:  # tuple contains only one key
            d[t[0]] = value
        else:  # tuple contains more than one key
            if t[0] not in d:
                d[t[0]] = dict()
            insert_deep_dictionary(d[t[0]], t[1:], value)
    else:
        d[t] = value


def shorten_param(_param_name):
    name_parts = _param_name.split('.')
    shortened_parts = '.'.join(map(lambda s: s[:3], name_parts[:-1]))
    shortened_leaf = ''.join(map(lambda s: s[0], name_parts[-1].split('_')))
    if shortened_parts:
        return shortened_parts + '.' + shortened_leaf
    else:
        return shortened_leaf


def adapt_experiment_path(config):
    config['_config_path'] = config['path']
    config['path'] = os.path.join(config['path'], config['name'])
    return config


def expand_experiment(config):
    """The body of the original's `__expand_experiments` for one (path-adapted) config."""
    expanded_config_list = []
    if 'grid' in config or 'list' in config:
        if 'grid' in config:
            iter_fun = itertools.product
            key = 'grid'
        else:
            iter_fun = zip
            key = 'list'
        tuple_dict = flatten_dict_to_tuple_keys(config[key])
        _param_names = ['.'.join(t) for t in tuple_dict]
        for values in iter_fun(*tuple_dict.values()):
            _config = deepcopy(config)
            del _config[key]

            _converted_name = '_'.join("{}{}".format(shorten_param(k), v) for k, v in zip(_param_names, values))  # noqa: UP032 (verbatim)
            _converted_name = re.sub("[' ]", '', _converted_name)
            _converted_name = re.sub('["]', '', _converted_name)
            _converted_name = re.sub(r"[(\[]", '_', _converted_name)
            _converted_name = re.sub(r"[)\]]", '', _converted_name)
            _converted_name = re.sub("[,]", '_', _converted_name)
            _config['_experiment_path'] = config['path']
            _config['path'] = os.path.join(config['path'], _converted_name)
            _config['experiment_name'] = _config['name']
            _config['name'] += '__' + _converted_name
            for i, t in enumerate(tuple_dict.keys()):
                insert_deep_dictionary(_config['params'], t, values[i])
            expanded_config_list.append(_config)
    else:
        expanded_config_list.append(config)
    for _config in expanded_config_list:  # __adapt_experiment_log_path
        _config['log_path'] = os.path.join(_config['path'], 'log')
    return expanded_config_list
