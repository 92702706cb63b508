<?php
/*
 * docs.php - the legacy JSON document API of t/cgi-bin/docs.cgi, in PHP,
 * run by php-fpm behind mod_proxy_fcgi (t/fpm.t). Like the CGI it knows
 * nothing about ETags or preconditions (it sends no validators at all) and
 * does its read-modify-write without any locking, so two clients that
 * update one document at the same time lose an update unless something in
 * front of it serialises them.
 *
 *   GET    /docs/NAME    200 {"name", "rev", "data"} or 404
 *   PUT    /docs/NAME    body JSON replaces data; rev+1; 201 on create
 *   PATCH  /docs/NAME    body JSON object merged into data; 404 if missing
 *   DELETE /docs/NAME    204 or 404
 *   POST   /docs/NAME    body appended to data.log; creates the document
 *
 * Knob (query string): sleep=SECONDS, a pause between read and write.
 *
 * Storage: DOCS_DATA (a FastCGI parameter from the server's SetEnv), the
 * same layout as docs.cgi - docs/NAME.json and counters/NAME.count, the
 * number of times this script ran for NAME - so the tests' helpers
 * (stored_doc, invocations) read both backends alike.
 */

$data_dir = isset($_SERVER['DOCS_DATA']) ? $_SERVER['DOCS_DATA'] : '';
$method = $_SERVER['REQUEST_METHOD'];

if ($data_dir === '') {
    respond(500, array('error' => 'DOCS_DATA is not set'));
}
$name = resource_name();
count_invocation($name);
if ($name === '') {
    respond(404, array('error' => 'no document named in the request'));
}

switch ($method) {
case 'GET':
case 'HEAD':
    $doc = load_doc($name);
    pause();
    if ($doc === null) {
        respond(404, array('error' => "no document $name"));
    }
    respond(200, $doc);
case 'PUT':
    $body = read_json_body();
    $doc = load_doc($name);
    pause();
    $rev = $doc === null ? 1 : $doc['rev'] + 1;
    $new = array('name' => $name, 'rev' => $rev, 'data' => $body);
    save_doc($new);
    respond($doc === null ? 201 : 200, $new);
case 'PATCH':
    $body = read_json_body();
    if (!is_array($body)) {
        respond(400, array('error' => 'PATCH body must be a JSON object'));
    }
    $doc = load_doc($name);
    pause();
    if ($doc === null) {
        respond(404, array('error' => "no document $name"));
    }
    $doc['data'] = array_merge((array)$doc['data'], $body);
    $doc['rev']++;
    save_doc($doc);
    respond(200, $doc);
case 'DELETE':
    $doc = load_doc($name);
    pause();
    if ($doc === null) {
        respond(404, array('error' => "no document $name"));
    }
    unlink(doc_file($name));
    respond(204, null);
case 'POST':
    $raw = file_get_contents('php://input');
    $entry = json_decode($raw, true);
    $doc = load_doc($name);
    pause();
    if ($doc === null) {
        $doc = array('name' => $name, 'rev' => 0, 'data' => array());
    }
    $doc['data']['log'][] = $entry === null ? $raw : $entry;
    $doc['rev']++;
    save_doc($doc);
    respond(200, $doc);
default:
    header('Allow: GET, HEAD, PUT, PATCH, DELETE, POST');
    respond(405, array('error' => "method $method not allowed"));
}

/* NAME from PATH_INFO (.../docs/NAME), as docs.cgi takes it. */
function resource_name()
{
    $path = isset($_SERVER['PATH_INFO']) ? $_SERVER['PATH_INFO'] : '';
    if (preg_match('{^(?:/+[^/]+)*?/+docs/+(.+?)/*$}s', $path, $m)) {
        return $m[1];
    }
    return '';
}

/* A name becomes one file name: everything but [A-Za-z0-9._-] is %XX. */
function file_name($name)
{
    $f = preg_replace_callback('/[^A-Za-z0-9._-]/', function ($m) {
        return sprintf('%%%02X', ord($m[0]));
    }, $name);
    return preg_replace('/^\./', '%2E', $f);
}

function doc_file($name)
{
    global $data_dir;
    return "$data_dir/docs/" . file_name($name) . '.json';
}

function load_doc($name)
{
    $text = @file_get_contents(doc_file($name));
    if ($text === false) {
        return null;
    }
    $doc = json_decode($text, true);
    return is_array($doc) ? $doc : null;
}

/* Whole-file replace: readers never see half a document, but nothing stops
 * two writers from overwriting each other. */
function save_doc($doc)
{
    global $data_dir;
    make_dir("$data_dir/docs");
    $tmp = sprintf('%s/docs/.tmp-%d-%04x', $data_dir, getmypid(),
                   mt_rand(0, 65535));
    if (file_put_contents($tmp, json_encode($doc)) === false
        || !rename($tmp, doc_file($doc['name']))) {
        respond(500, array('error' => 'cannot save the document'));
    }
}

function count_invocation($name)
{
    global $data_dir;
    make_dir("$data_dir/counters");
    bump_counter("$data_dir/counters/_global.count");
    bump_counter("$data_dir/counters/"
                 . ($name === '' ? '_index' : file_name($name)) . '.count');
}

function bump_counter($file)
{
    $fh = fopen($file, 'c+');
    if ($fh === false || !flock($fh, LOCK_EX)) {
        respond(500, array('error' => "cannot count in $file"));
    }
    $n = (int)stream_get_contents($fh);
    ftruncate($fh, 0);
    rewind($fh);
    fwrite($fh, ($n + 1) . "\n");
    fclose($fh);
}

function make_dir($dir)
{
    if (!is_dir($dir) && !@mkdir($dir, 0755, true) && !is_dir($dir)) {
        respond(500, array('error' => "cannot create $dir"));
    }
}

function pause()
{
    $s = isset($_GET['sleep']) ? $_GET['sleep'] : '';
    if (preg_match('/^\d*\.?\d+$/', $s) && $s > 0) {
        usleep((int)($s * 1000000));
    }
}

function read_json_body()
{
    $raw = file_get_contents('php://input');
    $value = json_decode($raw, true);
    if ($raw === '' || ($value === null && trim($raw) !== 'null')) {
        respond(400, array('error' => 'body is not JSON'));
    }
    return $value;
}

function respond($status, $doc)
{
    http_response_code($status);
    if ($status == 204) {
        exit(0);
    }
    $body = json_encode($doc) . "\n";
    header('Content-Type: application/json');
    header('Content-Length: ' . strlen($body));
    if ($_SERVER['REQUEST_METHOD'] !== 'HEAD') {
        echo $body;
    }
    exit(0);
}
